//! Rollups on PostgreSQL, read back: the reads that take in rollups run
//! in one snapshot of the raw table and its rollups, and merge the rollup
//! rows through the same code as SQLite's (`retention::add_rollup`), so
//! that both engines answer alike.
//!
//! Retention drops a month's partition once it is folded, and PostgreSQL
//! catalogs are not versioned like rows: a `REPEATABLE READ` snapshot
//! taken before the drop would find the partition gone and the rollups
//! not yet there. So a read locks both tables (`ACCESS SHARE`, which only
//! a drop waits for) before its snapshot is taken.

use std::collections::BTreeMap;

use postgres::{Client, Row, SimpleQueryMessage};

use super::filter::Where;
use super::Columns;
use super::PgStore;
use crate::error::{Error, Result};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{MetricKind, MetricType, TaskResult};
use crate::rollup::data::RollupData;
use crate::rollup::rolled::{add_rollup, classes_read, Rolled, RollupRead};
use crate::rollup::row::{count_columns, rollup_table};
use crate::rollup::tiers::{DAY_US, HOUR_US};
use crate::stats::running::{Stat, Welford};

/// The key columns of `kind`'s rollups on the server, after `level,
/// bucket`.
pub(super) fn key_columns(kind: MetricKind) -> [&'static str; 2] {
    match kind {
        MetricKind::Task => ["agent_id", "swarm_id"],
        MetricKind::Agent => ["agent_id", "metric_type"],
        MetricKind::Swarm => ["swarm_id", "metric_type"],
    }
}

impl PgStore {
    /// Runs `read` on one snapshot of `kind`'s metrics and rollups, told
    /// whether rollups apply to `filter` (some exist, and it names no
    /// task). Inside `consistent` the pinned snapshot serves; a filter
    /// naming a task needs no snapshot beyond its one statement.
    pub(super) fn with_rollups<T>(
        &self,
        kind: MetricKind,
        filter: &Filter,
        read: impl FnOnce(&mut Client, bool) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.read_conn()?;
        if filter.task_id.is_some() {
            return read(&mut conn, false);
        }
        let exists_sql = format!("SELECT EXISTS (SELECT 1 FROM {})", rollup_table(kind));
        if conn.is_pinned() {
            let exists: bool = conn
                .query_one(&exists_sql, &[])
                .map_err(self.error("read rollups"))?
                .column(0)?;
            return read(&mut conn, exists);
        }
        // One round trip: begin, lock, and ask whether rollups exist.
        let begun = conn.simple_query(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             LOCK TABLE {}, {} IN ACCESS SHARE MODE; {exists_sql}",
            kind.table(),
            rollup_table(kind)
        ));
        let answer = begun
            .map_err(self.error("begin a read"))
            .and_then(|messages| {
                let exists = messages.iter().any(|message| {
                matches!(message, SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))
            });
                read(&mut conn, exists)
            });
        match answer {
            Ok(answer) => {
                conn.batch_execute("COMMIT")
                    .map_err(self.error("end a read"))?;
                Ok(answer)
            }
            Err(e) => {
                // A connection goes back to the pool outside any
                // transaction, whatever failed.
                let _ = conn.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The rollups `read` asks for, merged per group (all in one group
    /// keyed `None` without one).
    pub(super) fn merge_rollups(
        &self,
        client: &mut Client,
        read: &RollupRead<'_>,
    ) -> Result<BTreeMap<Option<String>, Rolled>> {
        let by_result = read.group == Some(GroupBy::Result);
        let key = match read.group {
            // Rollups do not keep the model: theirs is no model.
            None | Some(GroupBy::Result | GroupBy::Model) => "NULL::text".to_owned(),
            Some(GroupBy::Agent) => "r.agent_id".to_owned(),
            Some(GroupBy::Swarm) if read.kind == MetricKind::Task => {
                "NULLIF(r.swarm_id, '')".to_owned()
            }
            Some(GroupBy::Swarm) => "r.swarm_id".to_owned(),
            Some(GroupBy::MetricType) => "r.metric_type::text".to_owned(),
        };
        let table = rollup_table(read.kind);
        self.merge_keyed(client, read, &key, |row, class| {
            if by_result {
                return Ok(TaskResult::from_code(class as i64).map(|r| r.as_str().to_owned()));
            }
            let key: Option<String> = row.column(0)?;
            if read.group != Some(GroupBy::MetricType) {
                return Ok(key);
            }
            let code = key.as_deref().and_then(|k| k.parse::<i64>().ok());
            let name = code
                .and_then(MetricType::from_code)
                .ok_or_else(|| Error::CorruptRow {
                    table,
                    reason: format!("unknown metric type code {key:?}"),
                })?;
            Ok(Some(name.as_str().to_owned()))
        })
    }

    /// The rollups `read` asks for (its group ignored) merged per bucket
    /// of `width` µs, a rollup falling in the bucket its own hour or day
    /// starts in.
    pub(super) fn merge_rollups_by_time(
        &self,
        client: &mut Client,
        read: &RollupRead<'_>,
        width: i64,
    ) -> Result<BTreeMap<i64, Rolled>> {
        self.merge_keyed(client, read, "r.bucket", |row, _| {
            let bucket: i64 = row.column(0)?;
            Ok(bucket.div_euclid(width) * width)
        })
    }

    /// Merges the rollups `read` covers into groups keyed by `key_of`
    /// (given each row, whose column 0 is `key_sql`, and the class).
    fn merge_keyed<K: Ord>(
        &self,
        client: &mut Client,
        read: &RollupRead<'_>,
        key_sql: &str,
        key_of: impl Fn(&Row, usize) -> Result<K>,
    ) -> Result<BTreeMap<K, Rolled>> {
        let mut groups = BTreeMap::new();
        let Some(w) = Where::rollups(read.kind, read.filter) else {
            return Ok(groups);
        };
        let kind = read.kind;
        let table = rollup_table(kind);
        let counts = count_columns(kind);
        let data = if read.column.is_some() {
            "r.data"
        } else {
            "NULL::bytea"
        };
        let sql = format!(
            "SELECT {key_sql}, {}, {data} FROM {table} r WHERE {}",
            counts
                .iter()
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            w.clause
        );
        let classes = classes_read(read);
        for row in client
            .query_typed(&sql, &w.params())
            .map_err(self.error("read rollups"))?
        {
            let mut row_counts = [0u64; 4];
            for (i, count) in row_counts.iter_mut().take(counts.len()).enumerate() {
                let n: i64 = row.column(1 + i)?;
                *count = u64::try_from(n).map_err(|_| Error::CorruptRow {
                    table,
                    reason: format!("negative count {n}"),
                })?;
            }
            let summary = match read.column {
                Some(_) => {
                    let bytes: &[u8] = row.column(1 + counts.len())?;
                    Some(RollupData::decode(bytes, kind, table)?)
                }
                None => None,
            };
            add_rollup(
                &mut groups,
                read,
                &classes,
                row_counts,
                summary.as_ref(),
                |class| key_of(&row, class),
            )?;
        }
        Ok(groups)
    }

    /// The first and last instants (µs) of the rollups `filter` covers:
    /// from the oldest one's start to the end of the newest one's hour or
    /// day.
    pub(super) fn rollup_span(
        &self,
        client: &mut Client,
        kind: MetricKind,
        filter: &Filter,
    ) -> Result<Option<(i64, i64)>> {
        let Some(w) = Where::rollups(kind, filter) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT min(r.bucket), \
                    max(r.bucket + CASE r.level WHEN 1 THEN {HOUR_US}::bigint \
                                                ELSE {DAY_US}::bigint END - 1) \
             FROM {} r WHERE {}",
            rollup_table(kind),
            w.clause
        );
        let row = client
            .query_typed_one(&sql, &w.params())
            .map_err(self.error("read rollups"))?;
        let first: Option<i64> = row.column(0)?;
        let last: Option<i64> = row.column(1)?;
        Ok(first.zip(last))
    }

    /// Hourly and daily rollups of `kind`, and the start of the oldest.
    pub fn rollup_counts(&self, kind: MetricKind) -> Result<(u64, u64, Option<i64>)> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2), \
                    min(bucket) FROM {}",
            rollup_table(kind)
        );
        let row = self
            .read_conn()?
            .query_one(&sql, &[])
            .map_err(self.error("read statistics"))?;
        let count = |i| -> Result<u64> { Ok(u64::try_from(row.column::<i64>(i)?).unwrap_or(0)) };
        Ok((count(0)?, count(1)?, row.column(2)?))
    }
}

/// The select list [`stat_of`] reads: count, exact sum (as text for
/// whole numbers), extremes and sample variance of `column` (alias `m`).
pub(super) fn stat_columns(column: &str) -> String {
    format!(
        "count(m.{column}), sum(m.{column})::text, min(m.{column})::text, \
         max(m.{column})::text, var_samp(m.{column})::float8"
    )
}

/// The stat of a raw column from the columns of [`stat_columns`] at
/// `at`: sums and extremes exact, the variance as PostgreSQL computes it
/// (exactly in `numeric` for whole numbers), so that it merges with the
/// rollups' stats by Chan's formula.
pub(super) fn stat_of(row: &Row, at: usize, kind: MetricKind) -> Result<Stat> {
    let int = kind == MetricKind::Task;
    let mut stat = Stat::new(int, false);
    let n = u64::try_from(row.column::<i64>(at)?).unwrap_or(0);
    if n == 0 {
        return Ok(stat);
    }
    let text = |i: usize| -> Result<String> {
        let text: Option<String> = row.column(at + i)?;
        text.ok_or_else(|| Error::CorruptRow {
            table: kind.table(),
            reason: "a missing sum or extreme".to_owned(),
        })
    };
    let bad = |text: String| Error::CorruptRow {
        table: kind.table(),
        reason: format!("a sum or extreme that is not a number: {text}"),
    };
    let mean = if int {
        let int_of = |i| -> Result<i128> {
            let t = text(i)?;
            t.parse::<i128>().map_err(|_| bad(t))
        };
        stat.sum_int = int_of(1)?;
        stat.min_int = i64::try_from(int_of(2)?).map_err(|_| bad("min".into()))?;
        stat.max_int = i64::try_from(int_of(3)?).map_err(|_| bad("max".into()))?;
        stat.min = stat.min_int as f64;
        stat.max = stat.max_int as f64;
        stat.sum_int as f64 / n as f64
    } else {
        let real_of = |i| -> Result<f64> {
            let t = text(i)?;
            t.parse::<f64>().map_err(|_| bad(t))
        };
        stat.sum_real = real_of(1)?;
        stat.min = real_of(2)?;
        stat.max = real_of(3)?;
        stat.sum_real / n as f64
    };
    let variance: Option<f64> = row.column(at + 4)?;
    stat.welford = Welford::from_parts(n, mean, variance.unwrap_or(0.0) * (n - 1) as f64);
    Ok(stat)
}
