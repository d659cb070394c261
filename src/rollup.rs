//! Tiered retention: raw rows are folded into hourly rollups, hourly into
//! daily ones, and the oldest daily rollups dropped, so that long-range
//! answers survive the rows they came from.
//!
//! Every row of a metrics table is either raw or folded into exactly one
//! rollup row. Each fold moves one bounded chunk in one transaction (read
//! the chunk, merge it into the rollups, delete it), so retention can run
//! while writers store, and a run that is killed halfway loses nothing and
//! counts nothing twice: the next run picks up where it stopped.

use std::collections::BTreeMap;

use chrono::Duration;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use crate::error::{Error, Result};
use crate::query::{to_micros, Filter};
use crate::record::{now, MetricKind};
use crate::storage::MetricsStorage;
use crate::writer::{Output, Work};

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// How long each tier is kept; `None` keeps it forever.
///
/// Defaults: raw rows 7 days, hourly rollups 90 days, daily rollups 2
/// years. Each horizon must be at least as long as the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Raw rows older than this are folded into hourly rollups.
    pub raw: Option<Duration>,
    /// Hourly rollups older than this are folded into daily rollups.
    pub hourly: Option<Duration>,
    /// Daily rollups older than this are dropped.
    pub daily: Option<Duration>,
    /// Rows (or hourly rollups) folded per transaction: what a concurrent
    /// store waits for at most.
    pub chunk_rows: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            raw: Some(Duration::days(7)),
            hourly: Some(Duration::days(90)),
            daily: Some(Duration::days(730)),
            chunk_rows: 5_000,
        }
    }
}

impl RetentionPolicy {
    /// Checks that every horizon is positive and none is shorter than the
    /// tier before it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `policy`) naming the horizon.
    pub fn validate(&self) -> Result<()> {
        if self.chunk_rows == 0 {
            return Err(Error::invalid("policy", "chunk_rows must be at least 1"));
        }
        let tiers = [
            ("raw", self.raw),
            ("hourly", self.hourly),
            ("daily", self.daily),
        ];
        for (name, horizon) in tiers {
            if let Some(h) = horizon {
                if h <= Duration::zero() {
                    return Err(Error::invalid(
                        "policy",
                        format!("the {name} horizon must be positive, got {h}"),
                    ));
                }
            }
        }
        for pair in tiers.windows(2) {
            let ((a, ha), (b, hb)) = (pair[0], pair[1]);
            match (ha, hb) {
                (None, Some(_)) => {
                    return Err(Error::invalid(
                        "policy",
                        format!("{a} is kept forever, so {b} must be too"),
                    ))
                }
                (Some(x), Some(y)) if y < x => {
                    return Err(Error::invalid(
                        "policy",
                        format!("the {b} horizon ({y}) is shorter than the {a} horizon ({x})"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What [`MetricsStorage::apply_retention`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Raw rows folded into hourly rollups (and deleted).
    pub raw_folded: u64,
    /// Hourly rollups folded into daily ones (and deleted).
    pub hourly_folded: u64,
    /// Daily rollups dropped.
    pub daily_dropped: u64,
    /// Whether the run finished (false when stopped by a chunk limit).
    pub finished: bool,
}

/// One step of retention, done as one writer job (one transaction).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    FoldRaw {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
    FoldHourly {
        kind: MetricKind,
        cutoff: i64,
        limit: i64,
    },
    DropDaily {
        kind: MetricKind,
        cutoff: i64,
    },
}

fn floor_to(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

impl MetricsStorage {
    /// Applies `policy`: folds raw rows older than the raw horizon into
    /// hourly rollups, hourly rollups older than the hourly horizon into
    /// daily ones, and drops daily rollups older than the daily horizon.
    /// Horizons are aligned down to whole hours (raw) and days (rollups).
    ///
    /// Works in bounded chunks, one transaction each, through the same
    /// queue as stores, so writers wait for one chunk at most. Safe to
    /// interrupt and to run again: no row is ever counted twice or lost.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an invalid policy; [`Error::ReadOnly`];
    /// [`Error::Sqlite`] when a chunk fails (chunks already done stay done).
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        self.apply_retention_steps(policy, usize::MAX)
    }

    /// [`apply_retention`](Self::apply_retention), stopping after at most
    /// `max_chunks` chunks (for bounded maintenance windows); the report
    /// says whether it finished. The next call goes on from there.
    ///
    /// # Errors
    /// As [`apply_retention`](Self::apply_retention), and for `max_chunks`
    /// = 0.
    pub fn apply_retention_steps(
        &self,
        policy: &RetentionPolicy,
        max_chunks: usize,
    ) -> Result<RetentionReport> {
        policy.validate()?;
        if max_chunks == 0 {
            return Err(Error::invalid("max_chunks", "must be at least 1"));
        }
        let writer = self.writer()?;
        let now_us = to_micros(now());
        let horizon = |d: Option<Duration>, width: i64| -> Result<Option<i64>> {
            d.map(|d| {
                let us = d
                    .num_microseconds()
                    .ok_or_else(|| Error::invalid("policy", format!("horizon {d} is too long")))?;
                Ok(floor_to(now_us.saturating_sub(us), width))
            })
            .transpose()
        };
        let (raw, hourly, daily) = (
            horizon(policy.raw, HOUR_US)?,
            horizon(policy.hourly, DAY_US)?,
            horizon(policy.daily, DAY_US)?,
        );
        let mut report = RetentionReport::default();
        let mut chunks = 0;
        let limit = i64::try_from(policy.chunk_rows).unwrap_or(i64::MAX);
        for kind in MetricKind::ALL.iter().copied() {
            let steps = [
                raw.map(|cutoff| Step::FoldRaw {
                    kind,
                    cutoff,
                    limit,
                }),
                hourly.map(|cutoff| Step::FoldHourly {
                    kind,
                    cutoff,
                    limit,
                }),
                daily.map(|cutoff| Step::DropDaily { kind, cutoff }),
            ];
            for step in steps.into_iter().flatten() {
                loop {
                    if chunks == max_chunks {
                        return Ok(report);
                    }
                    chunks += 1;
                    let counter = match &step {
                        Step::FoldRaw { .. } => &mut report.raw_folded,
                        Step::FoldHourly { .. } => &mut report.hourly_folded,
                        Step::DropDaily { .. } => &mut report.daily_dropped,
                    };
                    let Output::Deleted(n) = writer.submit(Work::Retention(step))? else {
                        return Err(Error::Internal(
                            "a retention step answered with another kind of output",
                        ));
                    };
                    *counter += n as u64;
                    if matches!(step, Step::DropDaily { .. }) || (n as i64) < limit {
                        break;
                    }
                }
            }
        }
        report.finished = true;
        Ok(report)
    }

    /// Whether any rollup of `kind` exists (queries then combine them).
    pub(crate) fn has_rollups(&self, kind: MetricKind) -> Result<bool> {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", rollup_table(kind));
        Ok(self
            .read_rows(&sql, Vec::new(), "read rollups", |row| {
                row.get::<_, bool>(0).map_err(Error::sqlite("read rollups"))
            })?
            .into_iter()
            .next()
            .unwrap_or(false))
    }
}

impl Step {
    /// Runs on the writer connection, inside the writer's transaction.
    pub(crate) fn run(&self, conn: &Connection) -> Result<usize> {
        match *self {
            Step::FoldRaw {
                kind,
                cutoff,
                limit,
            } => fold_raw(conn, kind, cutoff, limit),
            Step::FoldHourly {
                kind,
                cutoff,
                limit,
            } => fold_hourly(conn, kind, cutoff, limit),
            Step::DropDaily { kind, cutoff } => conn
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE level = 2 AND bucket < ?1",
                        rollup_table(kind)
                    ),
                    [cutoff],
                )
                .map_err(Error::sqlite("drop daily rollups")),
        }
    }
}

pub(crate) fn rollup_table(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Task => "task_rollups",
        MetricKind::Agent => "agent_rollups",
        MetricKind::Swarm => "swarm_rollups",
    }
}

/// A sketch whose configuration equals that of every decoded sketch, so
/// that the two merge.
fn new_sketch() -> DDSketch {
    let empty = DDSketch::new(Config::defaults());
    DDSketch::from_java_bytes(&empty.to_java_bytes()).unwrap_or(empty)
}

fn decode_sketch(bytes: &[u8], table: &'static str) -> Result<DDSketch> {
    DDSketch::from_java_bytes(bytes).map_err(|e| Error::CorruptRow {
        table,
        reason: format!("sketch: {e:?}"),
    })
}

/// Count, exact sum, min, max and Welford state of one column, with a
/// sketch of its values. Integer columns keep integer sums and extremes.
#[derive(Clone)]
pub(crate) struct Stat {
    pub count: u64,
    pub int: bool,
    pub sum_int: i128,
    pub sum_real: f64,
    pub min: f64,
    pub max: f64,
    pub min_int: i64,
    pub max_int: i64,
    pub mean: f64,
    pub m2: f64,
    pub sketch: Option<DDSketch>,
}

impl Stat {
    pub fn new(int: bool, with_sketch: bool) -> Self {
        Stat {
            count: 0,
            int,
            sum_int: 0,
            sum_real: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            min_int: i64::MAX,
            max_int: i64::MIN,
            mean: 0.0,
            m2: 0.0,
            sketch: with_sketch.then(new_sketch),
        }
    }

    pub fn push_int(&mut self, v: i64) {
        self.sum_int += i128::from(v);
        self.min_int = self.min_int.min(v);
        self.max_int = self.max_int.max(v);
        self.push_common(v as f64);
    }

    pub fn push_real(&mut self, v: f64) {
        self.sum_real += v;
        self.push_common(v);
    }

    fn push_common(&mut self, x: f64) {
        self.count += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        if let Some(s) = &mut self.sketch {
            s.add(x);
        }
    }

    /// Chan's parallel combination of two Welford states.
    pub fn merge(&mut self, other: &Stat) -> Result<()> {
        if other.count == 0 {
            return Ok(());
        }
        if self.count == 0 {
            let sketch = self.sketch.take();
            *self = other.clone();
            if other.sketch.is_none() {
                self.sketch = sketch;
            }
            return Ok(());
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count += other.count;
        self.sum_int += other.sum_int;
        self.sum_real += other.sum_real;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.min_int = self.min_int.min(other.min_int);
        self.max_int = self.max_int.max(other.max_int);
        if let (Some(a), Some(b)) = (&mut self.sketch, &other.sketch) {
            a.merge(b).map_err(|e| Error::CorruptRow {
                table: "rollups",
                reason: format!("sketches do not merge: {e:?}"),
            })?;
        }
        Ok(())
    }

    pub fn sum(&self) -> f64 {
        if self.int {
            self.sum_int as f64
        } else {
            self.sum_real
        }
    }

    pub fn extreme(&self, max: bool) -> f64 {
        match (self.int, max) {
            (true, false) => self.min_int as f64,
            (true, true) => self.max_int as f64,
            (false, false) => self.min,
            (false, true) => self.max,
        }
    }

    /// Reads the columns `{p}_sum, {p}_min, {p}_max, {p}_mean, {p}_m2` and
    /// optionally `{p}_sketch` starting at `at`.
    pub fn read(
        row: &Row<'_>,
        count: u64,
        at: usize,
        int: bool,
        sketch: bool,
        table: &'static str,
    ) -> Result<Stat> {
        let col = |e: rusqlite::Error| Error::CorruptRow {
            table,
            reason: e.to_string(),
        };
        let mut s = Stat::new(int, false);
        s.count = count;
        if int {
            s.sum_int = i128::from(row.get::<_, i64>(at).map_err(col)?);
            s.min_int = row.get(at + 1).map_err(col)?;
            s.max_int = row.get(at + 2).map_err(col)?;
            s.min = s.min_int as f64;
            s.max = s.max_int as f64;
        } else {
            s.sum_real = row.get(at).map_err(col)?;
            s.min = row.get(at + 1).map_err(col)?;
            s.max = row.get(at + 2).map_err(col)?;
        }
        s.mean = row.get(at + 3).map_err(col)?;
        s.m2 = row.get(at + 4).map_err(col)?;
        if sketch {
            let bytes: Vec<u8> = row.get(at + 5).map_err(col)?;
            s.sketch = Some(decode_sketch(&bytes, table)?);
        }
        Ok(s)
    }

    fn values(&self) -> Result<[SqlValue; 6]> {
        let sketch = self
            .sketch
            .as_ref()
            .map(DDSketch::to_java_bytes)
            .unwrap_or_default();
        Ok(if self.int {
            let sum = i64::try_from(self.sum_int).map_err(|_| {
                Error::invalid(
                    "rollup",
                    "a rollup sum exceeds the largest storable integer",
                )
            })?;
            [
                SqlValue::Integer(sum),
                SqlValue::Integer(self.min_int),
                SqlValue::Integer(self.max_int),
                SqlValue::Real(self.mean),
                SqlValue::Real(self.m2),
                SqlValue::Blob(sketch),
            ]
        } else {
            [
                SqlValue::Real(self.sum_real),
                SqlValue::Real(self.min),
                SqlValue::Real(self.max),
                SqlValue::Real(self.mean),
                SqlValue::Real(self.m2),
                SqlValue::Blob(sketch),
            ]
        })
    }
}

/// The measured columns of a rollup table, with whether they hold
/// integers.
fn measures(kind: MetricKind) -> &'static [(&'static str, bool)] {
    match kind {
        MetricKind::Task => &[("duration", true), ("tokens", true), ("files", true)],
        _ => &[("value", false)],
    }
}

/// The key columns of a rollup table after `level, bucket`.
fn key_columns(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Task => &["agent", "swarm", "result"],
        MetricKind::Agent => &["agent", "metric_type"],
        MetricKind::Swarm => &["swarm", "metric_type"],
    }
}

/// One rollup row: its key after the level and bucket, and one stat per
/// measured column.
struct Rollup {
    stats: Vec<Stat>,
}

fn empty_rollup(kind: MetricKind) -> Rollup {
    Rollup {
        stats: measures(kind)
            .iter()
            .map(|(_, int)| Stat::new(*int, true))
            .collect(),
    }
}

fn stat_columns(kind: MetricKind) -> String {
    measures(kind)
        .iter()
        .map(|(p, _)| format!("{p}_sum, {p}_min, {p}_max, {p}_mean, {p}_m2, {p}_sketch"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Merges `add` into the rollup row at (`level`, `bucket`, `key`).
fn merge_into(
    conn: &Connection,
    kind: MetricKind,
    level: i64,
    bucket: i64,
    key: &[i64],
    add: &Rollup,
) -> Result<()> {
    let table = rollup_table(kind);
    let keys = key_columns(kind);
    let key_match: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ?{}", i + 3))
        .collect();
    let select = format!(
        "SELECT count, {} FROM {table} WHERE level = ?1 AND bucket = ?2 AND {}",
        stat_columns(kind),
        key_match.join(" AND ")
    );
    let mut params: Vec<SqlValue> = vec![level.into(), bucket.into()];
    params.extend(key.iter().map(|k| SqlValue::Integer(*k)));
    let existing = conn
        .prepare_cached(&select)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(params.iter()), |row| {
                Ok(measures(kind)
                    .iter()
                    .enumerate()
                    .map(|(i, (_, int))| {
                        let count = row.get::<_, i64>(0).unwrap_or(0) as u64;
                        Stat::read(row, count, 1 + 6 * i, *int, true, table)
                    })
                    .collect::<Vec<_>>())
            })
            .optional()
        })
        .map_err(Error::sqlite("read rollup"))?;
    let mut merged = match existing {
        Some(stats) => Rollup {
            stats: stats.into_iter().collect::<Result<Vec<_>>>()?,
        },
        None => empty_rollup(kind),
    };
    for (m, a) in merged.stats.iter_mut().zip(&add.stats) {
        m.merge(a)?;
    }
    let mut values = params;
    values.push(SqlValue::Integer(
        i64::try_from(merged.stats[0].count).unwrap_or(i64::MAX),
    ));
    for s in &merged.stats {
        values.extend(s.values()?);
    }
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT OR REPLACE INTO {table} (level, bucket, {}, count, {}) VALUES ({})",
        keys.join(", "),
        stat_columns(kind),
        placeholders.join(", ")
    );
    conn.prepare_cached(&insert)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values.iter())))
        .map_err(Error::sqlite("write rollup"))?;
    Ok(())
}

/// Folds the oldest chunk of raw rows before `cutoff` into hourly rollups
/// and deletes them. Returns how many rows it folded.
fn fold_raw(conn: &Connection, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
    let (table, order_key, select) = match kind {
        MetricKind::Task => (
            "task_metrics",
            "task_id",
            "SELECT timestamp, task_id, agent, coalesce(swarm, 0), result, duration_ms, tokens_used, files_changed \
             FROM task_metrics WHERE timestamp < ?1 ORDER BY timestamp, task_id LIMIT ?2",
        ),
        MetricKind::Agent => (
            "agent_metrics",
            "metric_id",
            "SELECT timestamp, metric_id, agent, metric_type, value \
             FROM agent_metrics WHERE timestamp < ?1 ORDER BY timestamp, metric_id LIMIT ?2",
        ),
        MetricKind::Swarm => (
            "swarm_metrics",
            "metric_id",
            "SELECT timestamp, metric_id, swarm, metric_type, value \
             FROM swarm_metrics WHERE timestamp < ?1 ORDER BY timestamp, metric_id LIMIT ?2",
        ),
    };
    let mut groups: BTreeMap<(i64, Vec<i64>), Rollup> = BTreeMap::new();
    // The key of the last row folded: a timestamp and the task id or
    // metric id that orders rows within it.
    let mut last: Option<(i64, rusqlite::types::Value)> = None;
    let mut n = 0;
    {
        let mut stmt = conn
            .prepare_cached(select)
            .map_err(Error::sqlite("fold metrics"))?;
        let mut rows = stmt
            .query(params![cutoff, limit])
            .map_err(Error::sqlite("fold metrics"))?;
        while let Some(row) = rows.next().map_err(Error::sqlite("fold metrics"))? {
            let get = |i: usize| row.get::<_, i64>(i).map_err(Error::sqlite("fold metrics"));
            let ts = get(0)?;
            let within: rusqlite::types::Value =
                row.get(1).map_err(Error::sqlite("fold metrics"))?;
            last = Some((ts, within));
            n += 1;
            let bucket = floor_to(ts, HOUR_US);
            match kind {
                MetricKind::Task => {
                    let key = vec![get(2)?, get(3)?, get(4)?];
                    let r = groups
                        .entry((bucket, key))
                        .or_insert_with(|| empty_rollup(kind));
                    r.stats[0].push_int(get(5)?);
                    r.stats[1].push_int(get(6)?);
                    r.stats[2].push_int(get(7)?);
                }
                _ => {
                    let key = vec![get(2)?, get(3)?];
                    let value: f64 = row.get(4).map_err(Error::sqlite("fold metrics"))?;
                    groups
                        .entry((bucket, key))
                        .or_insert_with(|| empty_rollup(kind))
                        .stats[0]
                        .push_real(value);
                }
            }
        }
    }
    for ((bucket, key), rollup) in &groups {
        merge_into(conn, kind, 1, *bucket, key, rollup)?;
    }
    if let Some((ts, k)) = last {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE (timestamp, {order_key}) <= (?1, ?2)"
        ))
        .and_then(|mut s| s.execute((ts, k)))
        .map_err(Error::sqlite("fold metrics"))?;
    }
    Ok(n)
}

/// Folds the oldest chunk of hourly rollups before `cutoff` into daily
/// ones and deletes them.
fn fold_hourly(conn: &Connection, kind: MetricKind, cutoff: i64, limit: i64) -> Result<usize> {
    let table = rollup_table(kind);
    let keys = key_columns(kind);
    let select = format!(
        "SELECT bucket, {}, count, {} FROM {table} WHERE level = 1 AND bucket < ?1 \
         ORDER BY bucket, {} LIMIT ?2",
        keys.join(", "),
        stat_columns(kind),
        keys.join(", ")
    );
    let mut groups: BTreeMap<(i64, Vec<i64>), Rollup> = BTreeMap::new();
    let mut last: Option<Vec<i64>> = None;
    let mut n = 0;
    {
        let mut stmt = conn
            .prepare_cached(&select)
            .map_err(Error::sqlite("fold rollups"))?;
        let mut rows = stmt
            .query(params![cutoff, limit])
            .map_err(Error::sqlite("fold rollups"))?;
        while let Some(row) = rows.next().map_err(Error::sqlite("fold rollups"))? {
            let get = |i: usize| row.get::<_, i64>(i).map_err(Error::sqlite("fold rollups"));
            let bucket = get(0)?;
            let key: Vec<i64> = (1..=keys.len()).map(get).collect::<Result<_>>()?;
            let count = get(1 + keys.len())? as u64;
            let stats: Vec<Stat> = measures(kind)
                .iter()
                .enumerate()
                .map(|(i, (_, int))| {
                    Stat::read(row, count, 2 + keys.len() + 6 * i, *int, true, table)
                })
                .collect::<Result<_>>()?;
            let mut full = vec![bucket];
            full.extend(&key);
            last = Some(full);
            n += 1;
            let day = floor_to(bucket, DAY_US);
            let r = groups
                .entry((day, key))
                .or_insert_with(|| empty_rollup(kind));
            for (m, s) in r.stats.iter_mut().zip(&stats) {
                m.merge(s)?;
            }
        }
    }
    for ((day, key), rollup) in &groups {
        merge_into(conn, kind, 2, *day, key, rollup)?;
    }
    if let Some(last) = last {
        let columns = format!("bucket, {}", keys.join(", "));
        let placeholders: Vec<String> = (1..=last.len()).map(|i| format!("?{i}")).collect();
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE level = 1 AND ({columns}) <= ({})",
            placeholders.join(", ")
        ))
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(last.iter())))
        .map_err(Error::sqlite("fold rollups"))?;
    }
    Ok(n)
}

/// The `WHERE` clause selecting the rollup rows (alias `r`) that `filter`
/// covers: a rollup counts when its bucket starts inside the range.
/// `None` when the filter names a task, which rollups cannot tell apart.
pub(crate) fn rollup_where(filter: &Filter, kind: MetricKind) -> Option<(String, Vec<SqlValue>)> {
    if filter.task_id.is_some() {
        return None;
    }
    let mut clauses = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    let mut push = |clause: String, value: SqlValue| {
        params.push(value);
        clauses.push(clause.replace('?', &format!("?{}", params.len())));
    };
    if let Some(id) = &filter.agent_id {
        push(
            "r.agent = (SELECT id FROM agents WHERE name = ?)".into(),
            SqlValue::Text(id.clone()),
        );
    }
    if let Some(id) = &filter.swarm_id {
        push(
            "r.swarm = coalesce((SELECT id FROM swarms WHERE name = ?), -1)".into(),
            SqlValue::Text(id.clone()),
        );
    }
    if let Some(result) = filter.result {
        push("r.result = ?".into(), SqlValue::Integer(result.code()));
    }
    if let (Some(metric_type), false) = (filter.metric_type, kind == MetricKind::Task) {
        push(
            "r.metric_type = ?".into(),
            SqlValue::Integer(metric_type.code()),
        );
    }
    if let Some(range) = &filter.time_range {
        push(
            "r.bucket >= ?".into(),
            SqlValue::Integer(to_micros(range.start())),
        );
        push(
            "r.bucket <= ?".into(),
            SqlValue::Integer(to_micros(range.end())),
        );
    }
    let clause = if clauses.is_empty() {
        "1".to_owned()
    } else {
        clauses.join(" AND ")
    };
    Some((clause, params))
}

/// The combined stat of `column` (a measure prefix) over the rollups that
/// `filter` covers, with sketches when `sketches`.
pub(crate) fn rollup_stat(
    store: &MetricsStorage,
    kind: MetricKind,
    prefix: &str,
    int: bool,
    filter: &Filter,
    sketches: bool,
) -> Result<Stat> {
    let mut total = Stat::new(int, sketches);
    let Some((clause, params)) = rollup_where(filter, kind) else {
        return Ok(total);
    };
    let sketch_column = if sketches {
        format!(", r.{prefix}_sketch")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT r.count, r.{prefix}_sum, r.{prefix}_min, r.{prefix}_max, r.{prefix}_mean, r.{prefix}_m2{sketch_column} \
         FROM {} r WHERE {clause}",
        rollup_table(kind)
    );
    let table = rollup_table(kind);
    store.read_each(&sql, params, "read rollups", |row| {
        let count = row
            .get::<_, i64>(0)
            .map_err(Error::sqlite("read rollups"))? as u64;
        let stat = Stat::read(row, count, 1, int, sketches, table)?;
        total.merge(&stat)
    })?;
    Ok(total)
}

/// Task counts per result code over the rollups `filter` covers.
pub(crate) fn rollup_result_counts(
    store: &MetricsStorage,
    filter: &Filter,
) -> Result<Vec<(i64, u64)>> {
    let Some((clause, params)) = rollup_where(filter, MetricKind::Task) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT r.result, sum(r.count) FROM task_rollups r WHERE {clause} GROUP BY r.result"
    );
    store.read_rows(&sql, params, "read rollups", |row| {
        let code: i64 = row.get(0).map_err(Error::sqlite("read rollups"))?;
        let n: i64 = row.get(1).map_err(Error::sqlite("read rollups"))?;
        Ok((code, u64::try_from(n).unwrap_or(0)))
    })
}

/// The `q` quantile from a sketch, interpolated between the estimates of
/// the two closest ranks as numpy does between exact values, so that the
/// estimate stays within the sketch's relative accuracy of the exact
/// answer.
pub(crate) fn sketch_quantile(sketch: &DDSketch, q: f64) -> Option<f64> {
    let n = sketch.count();
    if n == 0 {
        return None;
    }
    if n == 1 || q <= 0.0 {
        return sketch.min();
    }
    if q >= 1.0 {
        return sketch.max();
    }
    let rank = q * (n - 1) as f64;
    let lo = rank.floor();
    let at = |r: f64| -> Option<f64> {
        if r >= (n - 1) as f64 {
            return sketch.max();
        }
        if r <= 0.0 {
            return sketch.min();
        }
        // The sketch takes the floor of q * (n - 1): aim at the middle of
        // the rank so that rounding cannot land on the one below.
        sketch.quantile((r + 0.5) / (n - 1) as f64).ok().flatten()
    };
    let low = at(lo)?;
    let fraction = rank - lo;
    if fraction == 0.0 {
        return Some(low);
    }
    let high = at(lo + 1.0)?;
    Some(low + (high - low) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_and_decoded_sketches_merge() {
        let mut a = new_sketch();
        a.add(3.0);
        let mut b = decode_sketch(&a.to_java_bytes(), "t").unwrap();
        b.merge(&a).unwrap();
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn merged_welford_states_match_one_pass() {
        let xs = [1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0, 1e9 + 4.0, 7.0];
        let mut whole = Stat::new(false, true);
        xs.iter().for_each(|x| whole.push_real(*x));
        let (mut a, mut b) = (Stat::new(false, true), Stat::new(false, true));
        xs[..2].iter().for_each(|x| a.push_real(*x));
        xs[2..].iter().for_each(|x| b.push_real(*x));
        a.merge(&b).unwrap();
        assert_eq!(a.count, 5);
        assert!((a.mean - whole.mean).abs() <= 1e-6 * whole.mean.abs());
        assert!((a.m2 - whole.m2).abs() <= 1e-9 * whole.m2);
        assert_eq!((a.min, a.max), (whole.min, whole.max));
    }

    #[test]
    fn sketch_quantiles_stay_within_one_percent() {
        let mut s = new_sketch();
        let values: Vec<f64> = (1..=1000).map(|i| (i * i) as f64).collect();
        values.iter().for_each(|v| s.add(*v));
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let exact = crate::aggregate::quantile(&mut values.clone(), q).unwrap();
            let est = sketch_quantile(&s, q).unwrap();
            assert!(
                (est - exact).abs() <= 0.01 * exact,
                "q {q}: {est} vs {exact}"
            );
        }
    }

    #[test]
    fn policies_are_checked() {
        assert!(RetentionPolicy::default().validate().is_ok());
        let p = |r: Option<i64>, h: Option<i64>, d: Option<i64>| RetentionPolicy {
            raw: r.map(Duration::days),
            hourly: h.map(Duration::days),
            daily: d.map(Duration::days),
            ..RetentionPolicy::default()
        };
        assert!(p(Some(1), None, None).validate().is_ok());
        assert!(p(None, None, None).validate().is_ok());
        assert!(p(Some(0), None, None).validate().is_err());
        assert!(p(Some(10), Some(5), None).validate().is_err());
        assert!(p(None, Some(5), None).validate().is_err());
        assert!(p(Some(1), Some(5), Some(4)).validate().is_err());
    }
}
