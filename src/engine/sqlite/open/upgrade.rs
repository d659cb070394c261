//! Migration 3's data step: the rollups of schema version 2 (one row per
//! bucket, key and task result, with columns of statistics and sketches)
//! copied into the summaries of version 3, one row per bucket and key.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use crate::engine::sqlite::rollup_codec::row_values;
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::data::{from_stats, RollupData};
use crate::rollup::row::{count_columns, key_columns, rollup_table};
use crate::stats::running::{decode_sketch, Stat, Welford};

/// One kind's version 2 rollup table and its measure columns' prefixes.
const OLD: [(MetricKind, &str, &[&str]); 3] = [
    (
        MetricKind::Task,
        "task_rollups",
        &["duration", "tokens", "files"],
    ),
    (MetricKind::Agent, "agent_rollups", &["value"]),
    (MetricKind::Swarm, "swarm_rollups", &["value"]),
];

/// Copies every version 2 rollup into the version 3 summaries.
pub(super) fn copy_v2_rollups(conn: &Connection) -> Result<()> {
    OLD.iter()
        .try_for_each(|(kind, old, measures)| copy_kind(conn, *kind, old, measures))
}

fn copy_kind(conn: &Connection, kind: MetricKind, old: &str, measures: &[&str]) -> Result<()> {
    let int = kind == MetricKind::Task;
    // The old key is the new one plus the task result.
    let key = key_columns(kind).join(", ");
    let class = if int { "result" } else { "0" };
    let stats: Vec<String> = measures
        .iter()
        .map(|p| format!("{p}_sum, {p}_min, {p}_max, {p}_mean, {p}_m2, {p}_sketch"))
        .collect();
    let select = format!(
        "SELECT level, bucket, {key}, {class}, count, {stats} FROM {old} \
         ORDER BY level, bucket, {key}",
        stats = stats.join(", "),
    );
    let counts = count_columns(kind);
    let insert = format!(
        "INSERT INTO {new} (level, bucket, {key}, {counts}, data) VALUES ({marks})",
        new = rollup_table(kind),
        counts = counts.join(", "),
        marks = (1..=5 + counts.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let write = |key: [i64; 4], summary: &RollupData| -> Result<()> {
        let mut values: Vec<rusqlite::types::Value> = key.iter().map(|&k| k.into()).collect();
        values.extend(row_values(summary, kind));
        conn.prepare_cached(&insert)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
            .map(drop)
            .map_err(Error::sqlite("migrate rollups"))
    };
    let mut stmt = conn
        .prepare(&select)
        .map_err(Error::sqlite("migrate rollups"))?;
    let mut rows = stmt.query([]).map_err(Error::sqlite("migrate rollups"))?;
    // Old rows of one new key follow each other: merge them, and write
    // the summary when the key changes.
    let mut current: Option<([i64; 4], RollupData)> = None;
    while let Some(row) = rows.next().map_err(Error::sqlite("migrate rollups"))? {
        let key: [i64; 4] = [
            int_at(row, 0)?,
            int_at(row, 1)?,
            int_at(row, 2)?,
            int_at(row, 3)?,
        ];
        let class = usize::try_from(int_at(row, 4)?).unwrap_or(usize::MAX);
        let count = u64::try_from(int_at(row, 5)?).unwrap_or(0);
        let stats = (0..measures.len())
            .map(|m| old_stat(row, 6 + 6 * m, count, int))
            .collect::<Result<Vec<_>>>()?;
        let mut summary = from_stats(kind, class, stats)?;
        match &mut current {
            Some((k, merged)) if *k == key => merged.merge(&mut summary)?,
            _ => {
                if let Some((k, merged)) = current.take() {
                    write(k, &merged)?;
                }
                current = Some((key, summary));
            }
        }
    }
    if let Some((k, merged)) = current {
        write(k, &merged)?;
    }
    Ok(())
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::CorruptRow {
        table: "rollups",
        reason: reason.into(),
    }
}

fn int_at(row: &Row<'_>, i: usize) -> Result<i64> {
    row.get(i).map_err(|e| corrupt(e.to_string()))
}

fn real_at(row: &Row<'_>, i: usize) -> Result<f64> {
    row.get(i).map_err(|e| corrupt(e.to_string()))
}

/// A version 2 measure: sum (an integer, or 16 bytes past 64 bits), min,
/// max, mean, M2 and sketch, from column `at`.
fn old_stat(row: &Row<'_>, at: usize, count: u64, int: bool) -> Result<Stat> {
    let mut s = Stat::new(int, false);
    if int {
        s.sum_int = match row.get_ref(at).map_err(|e| corrupt(e.to_string()))? {
            ValueRef::Integer(n) => i128::from(n),
            ValueRef::Blob(b) => i128::from_le_bytes(b.try_into().map_err(|_| corrupt("sum"))?),
            _ => return Err(corrupt("sum")),
        };
        s.min_int = int_at(row, at + 1)?;
        s.max_int = int_at(row, at + 2)?;
        s.min = s.min_int as f64;
        s.max = s.max_int as f64;
    } else {
        s.sum_real = real_at(row, at)?;
        s.min = real_at(row, at + 1)?;
        s.max = real_at(row, at + 2)?;
    }
    s.welford = Welford::from_parts(count, real_at(row, at + 3)?, real_at(row, at + 4)?);
    let sketch: Vec<u8> = row.get(at + 5).map_err(|e| corrupt(e.to_string()))?;
    s.sketch = Some(decode_sketch(&sketch, "rollups")?);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sqlite::open::schema::{apply_for_test, APPLICATION_ID};
    use crate::stats::running::encode_sketch;
    use crate::{AggregationType, Filter, MetricsStorage, TaskResult};

    /// A version 2 rollup row's stat columns for `values`.
    fn old_columns(values: &[i64]) -> Vec<rusqlite::types::Value> {
        let mut s = Stat::new(true, true);
        values.iter().for_each(|v| s.push_int(*v));
        let sum: rusqlite::types::Value = match i64::try_from(s.sum_int) {
            Ok(n) => n.into(),
            Err(_) => s.sum_int.to_le_bytes().to_vec().into(),
        };
        vec![
            sum,
            s.min_int.into(),
            s.max_int.into(),
            s.welford.mean().into(),
            s.welford.m2.into(),
            encode_sketch(s.sketch.as_ref().unwrap()).into(),
        ]
    }

    #[test]
    fn version_2_rollups_keep_their_answers_after_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        apply_for_test(&conn, 2);
        conn.execute_batch(
            "INSERT INTO agents (id, name) VALUES (1, 'a1'), (2, 'a2');
             INSERT INTO swarms (id, name) VALUES (1, 's1');",
        )
        .unwrap();
        let hour = 1_700_000_000_000_000 / 3_600_000_000 * 3_600_000_000;
        // Agent 1, swarm 1, one hour: 3 successes and 2 failures, each
        // result its own row as version 2 kept them; agent 2 a day later.
        let rows: [(i64, i64, i64, i64, &[i64]); 3] = [
            (hour, 1, 1, 0, &[10, 20, 30]),
            (hour, 1, 1, 1, &[40, i64::MAX]),
            (hour + 86_400_000_000, 2, 0, 2, &[7]),
        ];
        for (bucket, agent, swarm, result, durations) in rows {
            let mut values: Vec<rusqlite::types::Value> = vec![
                1.into(),
                bucket.into(),
                agent.into(),
                swarm.into(),
                result.into(),
                (durations.len() as i64).into(),
            ];
            values.extend(old_columns(durations));
            values.extend(old_columns(&vec![5; durations.len()]));
            values.extend(old_columns(&vec![1; durations.len()]));
            let marks: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
            conn.execute(
                &format!("INSERT INTO task_rollups VALUES ({})", marks.join(", ")),
                rusqlite::params_from_iter(values),
            )
            .unwrap();
        }
        drop(conn);

        let store = MetricsStorage::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), crate::SCHEMA_VERSION);
        let rate = store.success_rate(&Filter::new()).unwrap();
        assert_eq!(
            (rate.success, rate.failure, rate.timeout, rate.total),
            (3, 2, 1, 6)
        );
        let agent1 = store.success_rate(&Filter::new().agent("a1")).unwrap();
        assert_eq!(agent1.total, 5);
        let agg = |a, f: &Filter| {
            store
                .aggregate_metrics(crate::MetricKind::Task, a, f)
                .unwrap()
                .value
        };
        let all = Filter::new();
        assert_eq!(
            agg(AggregationType::Sum, &all),
            Some((107.0 + i64::MAX as f64).round())
        );
        assert_eq!(agg(AggregationType::Max, &all), Some(i64::MAX as f64));
        assert_eq!(agg(AggregationType::Min, &all), Some(7.0));
        let failures = Filter::new().result(TaskResult::Failure);
        assert_eq!(agg(AggregationType::Min, &failures), Some(40.0));
        let p = store
            .percentile(crate::MetricKind::Task, 0.5, &all)
            .unwrap();
        assert!(p.approximate);
        assert_eq!(p.count, 6);
        // Two new rows: agent 1's hour, with both results, and agent 2's.
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM task_summaries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let old: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'task_rollups')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!old);
    }
}
