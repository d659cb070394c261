//! Analytics for swarm controllers: grouped results, time series,
//! rankings, summaries and outliers. Every call takes the same [`Filter`]
//! as the core queries.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};

use crate::aggregate::{
    aggregated_column, finish, quantile, raw_stat, raw_stat_columns, rollup_prefix, sql_function,
    Aggregate, Percentile, SuccessRate,
};
use crate::error::{Error, Result};
use crate::query::{from_micros, to_micros, Filter};
use crate::record::{AggregationType, MetricKind, TaskMetric, TaskResult};
use crate::rollup::{rollup_table, rollup_where, Stat};
use crate::storage::MetricsStorage;

/// The median.
pub const P50: f64 = 0.50;
/// The 90th percentile.
pub const P90: f64 = 0.90;
/// The 95th percentile.
pub const P95: f64 = 0.95;
/// The 99th percentile.
pub const P99: f64 = 0.99;

/// What results are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The agent (task and agent metrics).
    Agent,
    /// The swarm (task and swarm metrics); tasks without a swarm form the
    /// group with no key.
    Swarm,
    /// The task result (task metrics).
    Result,
    /// The metric type (agent and swarm metrics).
    MetricType,
}

impl GroupBy {
    /// The SQL expression naming the group of a row of `kind` (aliased
    /// `m`), or an error when the grouping does not apply.
    fn key_sql(self, kind: MetricKind) -> Result<&'static str> {
        let key = match (self, kind) {
            (GroupBy::Agent, MetricKind::Task | MetricKind::Agent) => {
                "(SELECT name FROM agents WHERE id = m.agent)"
            }
            (GroupBy::Swarm, MetricKind::Task | MetricKind::Swarm) => {
                "(SELECT name FROM swarms WHERE id = m.swarm)"
            }
            (GroupBy::Result, MetricKind::Task) => {
                "(SELECT name FROM task_results WHERE code = m.result)"
            }
            (GroupBy::MetricType, MetricKind::Agent | MetricKind::Swarm) => {
                "(SELECT name FROM metric_types WHERE code = m.metric_type)"
            }
            _ => {
                return Err(Error::invalid(
                    "group_by",
                    format!("{self:?} does not apply to {kind} metrics"),
                ))
            }
        };
        Ok(key)
    }

    /// The raw column grouped on (cheap to group by; names are looked up
    /// once per group).
    fn column(self) -> &'static str {
        match self {
            GroupBy::Agent => "m.agent",
            GroupBy::Swarm => "m.swarm",
            GroupBy::Result => "m.result",
            GroupBy::MetricType => "m.metric_type",
        }
    }
}

/// One group's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grouped<T> {
    /// The group's key: an agent or swarm id, a result or a metric type;
    /// `None` for tasks without a swarm.
    pub key: Option<String>,
    /// The result for that group.
    #[serde(flatten)]
    pub value: T,
}

/// What a time series measures in each bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// An aggregate of the values, as [`MetricsStorage::aggregate_metrics`].
    Aggregate(AggregationType),
    /// A quantile of the values, as [`MetricsStorage::percentile`].
    Percentile(f64),
    /// The success rate of tasks, as [`MetricsStorage::success_rate`].
    SuccessRate,
}

/// What one bucket of a series holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BucketValue {
    /// For [`Measure::Aggregate`].
    Aggregate(Aggregate),
    /// For [`Measure::Percentile`].
    Percentile(Percentile),
    /// For [`Measure::SuccessRate`].
    SuccessRate(SuccessRate),
}

/// One bucket of a time series: `[start, start + width)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The first instant of the bucket, aligned to multiples of the width
    /// since the Unix epoch (so minutes, hours and days start on UTC
    /// boundaries).
    pub start: DateTime<Utc>,
    /// The measure over the bucket's metrics.
    pub value: BucketValue,
}

/// What agents are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// The share of successful tasks.
    SuccessRate,
    /// Tasks per hour over the filter's time range (or, without one, over
    /// the span from the oldest to the newest matching task).
    Throughput,
    /// The mean task duration.
    AvgDuration,
    /// The mean tokens per task.
    AvgTokens,
}

/// One agent in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// The agent.
    pub agent_id: String,
    /// Its score by the ranking's measure.
    pub score: f64,
    /// Its tasks in the selection.
    pub tasks: u64,
}

/// Statistics of task durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DurationStats {
    /// The mean.
    pub avg: Option<f64>,
    /// The median.
    pub p50: Option<f64>,
    /// The 95th percentile.
    pub p95: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
    /// The longest.
    pub max: Option<f64>,
}

/// One call's overview of a swarm, an agent or everything over a range.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Tasks in the selection.
    pub tasks: u64,
    /// Their success rate and outcome counts.
    pub success_rate: SuccessRate,
    /// Their durations.
    pub duration_ms: DurationStats,
    /// Tokens used in all.
    pub tokens_total: u64,
    /// Tokens per task (`None` without tasks).
    pub tokens_per_task: Option<f64>,
    /// Files changed in all.
    pub files_changed_total: u64,
}

/// A task whose duration lies outside its agent's Tukey fences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    /// The task.
    pub task: TaskMetric,
    /// Its agent's first quartile of durations over the selection.
    pub q1: f64,
    /// Its agent's third quartile.
    pub q3: f64,
    /// `q1 - 1.5 * (q3 - q1)`.
    pub low_fence: f64,
    /// `q3 + 1.5 * (q3 - q1)`.
    pub high_fence: f64,
}

/// Checks a quantile argument.
pub(crate) fn validate_q(q: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&q) {
        return Err(Error::invalid("q", format!("must lie in [0, 1], got {q}")));
    }
    Ok(())
}

fn validate_n(n: usize) -> Result<i64> {
    if n == 0 {
        return Err(Error::invalid("n", "must be at least 1"));
    }
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

fn micros_of(width: Duration) -> Result<i64> {
    match width.num_microseconds() {
        Some(us) if us > 0 => Ok(us),
        _ => Err(Error::invalid(
            "width",
            format!("a bucket width must be at least one microsecond, got {width}"),
        )),
    }
}

/// Most buckets a filled series may hold.
const MAX_FILLED_BUCKETS: i64 = 1_000_000;

/// Adds `empty` for every bucket without data between the filter's start
/// and end (or the first and last bucket with data).
fn fill(
    buckets: &mut BTreeMap<i64, BucketValue>,
    filter: &Filter,
    width: i64,
    empty: BucketValue,
) -> Result<()> {
    let (first, last) = match &filter.time_range {
        Some(range) => (
            bucket_of(to_micros(range.start()), width),
            bucket_of(to_micros(range.end()), width),
        ),
        None => match (buckets.keys().next(), buckets.keys().next_back()) {
            (Some(&first), Some(&last)) => (first, last),
            _ => return Ok(()),
        },
    };
    let count = (last - first) / width + 1;
    if count > MAX_FILLED_BUCKETS {
        return Err(Error::invalid(
            "width",
            format!("filling the range would take {count} buckets; at most {MAX_FILLED_BUCKETS} are allowed"),
        ));
    }
    let mut start = first;
    while start <= last {
        buckets.entry(start).or_insert(empty);
        start += width;
    }
    Ok(())
}

/// `floor(t / width) * width`, also for times before 1970.
fn bucket_of(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

impl MetricsStorage {
    /// [`aggregate_metrics`](Self::aggregate_metrics) for every group at
    /// once, sorted by key (no key first).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the grouping or a filter field does not
    /// apply to `kind`; otherwise as `aggregate_metrics`.
    pub fn aggregate_by(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        filter.validate(kind, true)?;
        let key = group_by.key_sql(kind)?;
        let (column, metric_type) = aggregated_column(kind, filter.metric_type)?;
        let (from, params) = filter.sql_from(kind);
        if self.has_rollups(kind)? {
            if let Some(rollups) = rollup_where(filter, kind) {
                let int = kind == MetricKind::Task;
                let sql = format!(
                    "SELECT {key}, {} FROM {from} GROUP BY {}",
                    raw_stat_columns(column, int),
                    group_by.column()
                );
                let mut groups: BTreeMap<Option<String>, Stat> = BTreeMap::new();
                self.read_each(&sql, params, "aggregate by group", |row| {
                    let key: Option<String> =
                        row.get(0).map_err(Error::sqlite("aggregate by group"))?;
                    groups.insert(key, raw_stat(row, 1, int)?);
                    Ok(())
                })?;
                let (rclause, rparams) = rollups;
                let p = rollup_prefix(column);
                let table = rollup_table(kind);
                let sql = format!(
                    "SELECT {}, r.count, r.{p}_sum, r.{p}_min, r.{p}_max, r.{p}_mean, r.{p}_m2 \
                     FROM {table} r WHERE {rclause}",
                    key.replace("m.", "r.")
                );
                self.read_each(&sql, rparams, "aggregate by group", |row| {
                    let key: Option<String> =
                        row.get(0).map_err(Error::sqlite("aggregate by group"))?;
                    let count = row
                        .get::<_, i64>(1)
                        .map_err(Error::sqlite("aggregate by group"))?
                        as u64;
                    let stat = Stat::read(row, count, 2, int, false, table)?;
                    groups
                        .entry(key)
                        .or_insert_with(|| Stat::new(int, false))
                        .merge(&stat)
                })?;
                return Ok(groups
                    .into_iter()
                    .map(|(key, stat)| Grouped {
                        key,
                        value: finish(&stat, aggregation, metric_type),
                    })
                    .collect());
            }
        }
        let sql = format!(
            "SELECT {key}, count(m.{column}), {}(m.{column}) FROM {from} GROUP BY {}",
            sql_function(aggregation),
            group_by.column()
        );
        let mut rows = self.read_rows(&sql, params, "aggregate by group", |row| {
            let key: Option<String> = row.get(0).map_err(Error::sqlite("aggregate by group"))?;
            let count: i64 = row.get(1).map_err(Error::sqlite("aggregate by group"))?;
            let value: Option<f64> = row.get(2).map_err(Error::sqlite("aggregate by group"))?;
            let count = u64::try_from(count).unwrap_or(0);
            Ok(Grouped {
                key,
                value: Aggregate {
                    aggregation,
                    metric_type,
                    count,
                    value: if count == 0 { None } else { value },
                },
            })
        })?;
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rows)
    }

    /// [`success_rate`](Self::success_rate) for every agent, swarm or
    /// result at once, best rate first (ties by key).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `GroupBy::MetricType` or a filter field
    /// that does not apply to task metrics; otherwise as `success_rate`.
    pub fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>> {
        filter.validate(MetricKind::Task, false)?;
        let key = group_by.key_sql(MetricKind::Task)?;
        let (from, params) = filter.sql_from(MetricKind::Task);
        let sql = format!(
            "SELECT {key}, m.result, count(*) FROM {from} GROUP BY {}, m.result",
            group_by.column()
        );
        let mut groups: BTreeMap<Option<String>, SuccessRate> = BTreeMap::new();
        self.count_results_by_group(&sql, params, "task_metrics", &mut groups)?;
        if self.has_rollups(MetricKind::Task)? {
            if let Some((rclause, rparams)) = rollup_where(filter, MetricKind::Task) {
                let sql = format!(
                    "SELECT {}, r.result, sum(r.count) FROM task_rollups r WHERE {rclause} \
                     GROUP BY {}, r.result",
                    key.replace("m.", "r."),
                    group_by.column().replace("m.", "r.")
                );
                self.count_results_by_group(&sql, rparams, "task_rollups", &mut groups)?;
            }
        }
        let mut out: Vec<Grouped<SuccessRate>> = groups
            .into_iter()
            .map(|(key, value)| Grouped { key, value })
            .collect();
        out.sort_by(|a, b| {
            let rate = |g: &Grouped<SuccessRate>| g.value.rate.unwrap_or(-1.0);
            rate(b).total_cmp(&rate(a)).then_with(|| a.key.cmp(&b.key))
        });
        Ok(out)
    }

    /// Adds the `(key, result code, count)` rows of `sql` to `groups`.
    fn count_results_by_group(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
        table: &'static str,
        groups: &mut BTreeMap<Option<String>, SuccessRate>,
    ) -> Result<()> {
        self.read_each(sql, params, "success rate by group", |row| {
            let key: Option<String> = row.get(0).map_err(Error::sqlite("success rate by group"))?;
            let code: i64 = row.get(1).map_err(Error::sqlite("success rate by group"))?;
            let n: i64 = row.get(2).map_err(Error::sqlite("success rate by group"))?;
            let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                table,
                reason: format!("unknown result code {code}"),
            })?;
            groups
                .entry(key)
                .or_default()
                .add(result, u64::try_from(n).unwrap_or(0));
            Ok(())
        })
    }

    /// `measure` over time, one bucket of `width` each, buckets aligned to
    /// multiples of `width` since the Unix epoch (UTC), oldest first.
    ///
    /// Buckets without metrics are left out, or, with `fill_empty`, given
    /// as empty results (count 0, no value) for every bucket from the
    /// filter's start to its end (or from the first to the last bucket
    /// with data, without a time range).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a width under one microsecond, a
    /// quantile outside `[0, 1]`, a success rate of agent or swarm metrics,
    /// a filter that does not apply, or more than a million buckets to
    /// fill; otherwise as the single-number calls.
    pub fn series(
        &self,
        kind: MetricKind,
        measure: Measure,
        width: Duration,
        filter: &Filter,
        fill_empty: bool,
    ) -> Result<Vec<Bucket>> {
        let width = micros_of(width)?;
        let mut buckets: BTreeMap<i64, BucketValue> = BTreeMap::new();
        match measure {
            Measure::Aggregate(aggregation) => {
                filter.validate(kind, true)?;
                let (column, metric_type) = aggregated_column(kind, filter.metric_type)?;
                let (from, mut params) = filter.sql_from(kind);
                params.push(SqlValue::Integer(width));
                let w = params.len();
                let sql = format!(
                    "SELECT (m.timestamp - (((m.timestamp % ?{w}) + ?{w}) % ?{w})) AS bucket, \
                     count(m.{column}), {}(m.{column}) FROM {from} GROUP BY bucket",
                    sql_function(aggregation),
                );
                for (start, count, value) in
                    self.read_rows(&sql, params, "aggregate series", |row| {
                        let start: i64 = row.get(0).map_err(Error::sqlite("aggregate series"))?;
                        let count: i64 = row.get(1).map_err(Error::sqlite("aggregate series"))?;
                        let value: Option<f64> =
                            row.get(2).map_err(Error::sqlite("aggregate series"))?;
                        Ok((start, u64::try_from(count).unwrap_or(0), value))
                    })?
                {
                    buckets.insert(
                        start,
                        BucketValue::Aggregate(Aggregate {
                            aggregation,
                            metric_type,
                            count,
                            value: if count == 0 { None } else { value },
                        }),
                    );
                }
                if fill_empty {
                    let empty = BucketValue::Aggregate(Aggregate {
                        aggregation,
                        metric_type,
                        count: 0,
                        value: None,
                    });
                    fill(&mut buckets, filter, width, empty)?;
                }
            }
            Measure::Percentile(q) => {
                validate_q(q)?;
                filter.validate(kind, true)?;
                let (column, metric_type) = aggregated_column(kind, filter.metric_type)?;
                let (from, params) = filter.sql_from(kind);
                let sql = format!("SELECT m.timestamp, m.{column} FROM {from}");
                let mut values: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for (t, v) in self.read_rows(&sql, params, "percentile series", |row| {
                    let t: i64 = row.get(0).map_err(Error::sqlite("percentile series"))?;
                    let v: f64 = row.get(1).map_err(Error::sqlite("percentile series"))?;
                    Ok((t, v))
                })? {
                    values.entry(bucket_of(t, width)).or_default().push(v);
                }
                for (start, mut vs) in values {
                    let count = vs.len() as u64;
                    let value = quantile(&mut vs, q);
                    buckets.insert(
                        start,
                        BucketValue::Percentile(Percentile {
                            q,
                            metric_type,
                            count,
                            value,
                            approximate: false,
                        }),
                    );
                }
                if fill_empty {
                    let empty = BucketValue::Percentile(Percentile {
                        q,
                        metric_type,
                        count: 0,
                        value: None,
                        approximate: false,
                    });
                    fill(&mut buckets, filter, width, empty)?;
                }
            }
            Measure::SuccessRate => {
                if kind != MetricKind::Task {
                    return Err(Error::invalid(
                        "kind",
                        format!("success rates are computed from task metrics, not {kind} metrics"),
                    ));
                }
                filter.validate(kind, false)?;
                let (from, mut params) = filter.sql_from(kind);
                params.push(SqlValue::Integer(width));
                let w = params.len();
                let sql = format!(
                    "SELECT (m.timestamp - (((m.timestamp % ?{w}) + ?{w}) % ?{w})) AS bucket, \
                     m.result, count(*) FROM {from} GROUP BY bucket, m.result"
                );
                for (start, code, n) in
                    self.read_rows(&sql, params, "success rate series", |row| {
                        let start: i64 =
                            row.get(0).map_err(Error::sqlite("success rate series"))?;
                        let code: i64 = row.get(1).map_err(Error::sqlite("success rate series"))?;
                        let n: i64 = row.get(2).map_err(Error::sqlite("success rate series"))?;
                        Ok((start, code, n))
                    })?
                {
                    let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                        table: "task_metrics",
                        reason: format!("unknown result code {code}"),
                    })?;
                    let entry = buckets
                        .entry(start)
                        .or_insert(BucketValue::SuccessRate(SuccessRate::default()));
                    if let BucketValue::SuccessRate(rate) = entry {
                        rate.add(result, u64::try_from(n).unwrap_or(0));
                    }
                }
                if fill_empty {
                    fill(
                        &mut buckets,
                        filter,
                        width,
                        BucketValue::SuccessRate(SuccessRate::default()),
                    )?;
                }
            }
        }
        buckets
            .into_iter()
            .map(|(start, value)| {
                let start = from_micros(start).ok_or_else(|| {
                    Error::invalid("width", "a bucket starts outside the representable dates")
                })?;
                Ok(Bucket { start, value })
            })
            .collect()
    }

    /// The top (best first) or bottom (worst first) `n` agents by `by`,
    /// among agents with at least `min_tasks` tasks in the selection.
    /// "Best" is the highest success rate or throughput, and the lowest
    /// average duration or tokens.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `n` = 0 or a filter that does not apply
    /// to task metrics; [`Error::Sqlite`] or [`Error::Pool`] when the read
    /// fails.
    pub fn rank_agents(
        &self,
        by: RankBy,
        best_first: bool,
        n: usize,
        min_tasks: u64,
        filter: &Filter,
    ) -> Result<Vec<Ranked>> {
        filter.validate(MetricKind::Task, false)?;
        validate_n(n)?;
        let (from, params) = filter.sql_from(MetricKind::Task);
        let sql = format!(
            "SELECT (SELECT name FROM agents WHERE id = m.agent), count(*), \
                    count(*) FILTER (WHERE m.result = 0), avg(m.duration_ms), avg(m.tokens_used), \
                    min(m.timestamp), max(m.timestamp) \
             FROM {from} GROUP BY m.agent"
        );
        struct Row {
            agent: String,
            tasks: u64,
            success: u64,
            avg_duration: f64,
            avg_tokens: f64,
        }
        let mut oldest = i64::MAX;
        let mut newest = i64::MIN;
        let rows = self.read_rows(&sql, params, "rank agents", |row| {
            let agent: String = row.get(0).map_err(Error::sqlite("rank agents"))?;
            let tasks: i64 = row.get(1).map_err(Error::sqlite("rank agents"))?;
            let success: i64 = row.get(2).map_err(Error::sqlite("rank agents"))?;
            let avg_duration: f64 = row.get(3).map_err(Error::sqlite("rank agents"))?;
            let avg_tokens: f64 = row.get(4).map_err(Error::sqlite("rank agents"))?;
            let first: i64 = row.get(5).map_err(Error::sqlite("rank agents"))?;
            let last: i64 = row.get(6).map_err(Error::sqlite("rank agents"))?;
            Ok((
                Row {
                    agent,
                    tasks: u64::try_from(tasks).unwrap_or(0),
                    success: u64::try_from(success).unwrap_or(0),
                    avg_duration,
                    avg_tokens,
                },
                first,
                last,
            ))
        })?;
        for (_, first, last) in &rows {
            oldest = oldest.min(*first);
            newest = newest.max(*last);
        }
        let span = match &filter.time_range {
            Some(range) => to_micros(range.end()) - to_micros(range.start()),
            None => newest.saturating_sub(oldest),
        };
        // Tasks all in one instant are counted as one hour's worth.
        let hours = if span > 0 { span as f64 / 3.6e9 } else { 1.0 };
        let mut ranked: Vec<Ranked> = rows
            .into_iter()
            .map(|(r, _, _)| r)
            .filter(|r| r.tasks >= min_tasks.max(1))
            .map(|r| {
                let score = match by {
                    RankBy::SuccessRate => r.success as f64 / r.tasks as f64,
                    RankBy::Throughput => r.tasks as f64 / hours,
                    RankBy::AvgDuration => r.avg_duration,
                    RankBy::AvgTokens => r.avg_tokens,
                };
                Ranked {
                    agent_id: r.agent,
                    score,
                    tasks: r.tasks,
                }
            })
            .collect();
        let higher_is_better = matches!(by, RankBy::SuccessRate | RankBy::Throughput);
        ranked.sort_by(|a, b| {
            let order = if higher_is_better == best_first {
                b.score.total_cmp(&a.score)
            } else {
                a.score.total_cmp(&b.score)
            };
            order.then_with(|| a.agent_id.cmp(&b.agent_id))
        });
        ranked.truncate(n);
        Ok(ranked)
    }

    /// The `n` slowest tasks of the selection, slowest first (ties: newest
    /// first).
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics), and for `n` = 0.
    pub fn slowest_tasks(&self, n: usize, filter: &Filter) -> Result<Vec<TaskMetric>> {
        validate_n(n)?;
        self.get_task_metrics_ordered(
            filter,
            n,
            "m.duration_ms DESC, m.timestamp DESC, m.task_id DESC",
        )
    }

    /// Task count, success rate, duration statistics, and token and file
    /// totals of the selection, in one call.
    ///
    /// # Errors
    /// As [`success_rate`](Self::success_rate).
    pub fn summary(&self, filter: &Filter) -> Result<Summary> {
        filter.validate(MetricKind::Task, false)?;
        let (from, params) = filter.sql_from(MetricKind::Task);
        let sql =
            format!("SELECT m.result, m.duration_ms, m.tokens_used, m.files_changed FROM {from}");
        let mut summary = Summary::default();
        let mut durations = Vec::new();
        let mut sum_duration = 0f64;
        for (code, duration, tokens, files) in
            self.read_rows(&sql, params, "summarise tasks", |row| {
                let code: i64 = row.get(0).map_err(Error::sqlite("summarise tasks"))?;
                let duration: i64 = row.get(1).map_err(Error::sqlite("summarise tasks"))?;
                let tokens: i64 = row.get(2).map_err(Error::sqlite("summarise tasks"))?;
                let files: i64 = row.get(3).map_err(Error::sqlite("summarise tasks"))?;
                Ok((code, duration, tokens, files))
            })?
        {
            let result = TaskResult::from_code(code).ok_or_else(|| Error::CorruptRow {
                table: "task_metrics",
                reason: format!("unknown result code {code}"),
            })?;
            summary.success_rate.add(result, 1);
            durations.push(duration as f64);
            sum_duration += duration as f64;
            summary.tokens_total = summary
                .tokens_total
                .saturating_add(u64::try_from(tokens).unwrap_or(0));
            summary.files_changed_total = summary
                .files_changed_total
                .saturating_add(u64::try_from(files).unwrap_or(0));
        }
        summary.tasks = durations.len() as u64;
        if summary.tasks > 0 {
            let n = summary.tasks as f64;
            summary.tokens_per_task = Some(summary.tokens_total as f64 / n);
            summary.duration_ms = DurationStats {
                avg: Some(sum_duration / n),
                p50: quantile(&mut durations, P50),
                p95: quantile(&mut durations, P95),
                p99: quantile(&mut durations, P99),
                max: durations.iter().copied().reduce(f64::max),
            };
        }
        Ok(summary)
    }

    /// Tasks whose duration lies outside Tukey's fences (1.5 times the
    /// interquartile range below the first or above the third quartile)
    /// of their own agent's durations over the selection; by agent, then
    /// slowest first.
    ///
    /// # Errors
    /// As [`get_task_metrics`](Self::get_task_metrics).
    pub fn duration_outliers(&self, filter: &Filter) -> Result<Vec<Outlier>> {
        let tasks =
            self.get_task_metrics_ordered(filter, usize::MAX, "m.timestamp DESC, m.task_id DESC")?;
        let mut by_agent: BTreeMap<&str, Vec<&TaskMetric>> = BTreeMap::new();
        for t in &tasks {
            by_agent.entry(&t.agent_id).or_default().push(t);
        }
        let mut out = Vec::new();
        for (_, agent_tasks) in by_agent {
            let mut durations: Vec<f64> =
                agent_tasks.iter().map(|t| t.duration_ms as f64).collect();
            let (Some(q1), Some(q3)) = (
                quantile(&mut durations, 0.25),
                quantile(&mut durations, 0.75),
            ) else {
                continue;
            };
            let iqr = q3 - q1;
            let (low_fence, high_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
            let mut outliers: Vec<Outlier> = agent_tasks
                .into_iter()
                .filter(|t| {
                    (t.duration_ms as f64) < low_fence || (t.duration_ms as f64) > high_fence
                })
                .map(|t| Outlier {
                    task: t.clone(),
                    q1,
                    q3,
                    low_fence,
                    high_fence,
                })
                .collect();
            outliers.sort_by_key(|o| std::cmp::Reverse(o.task.duration_ms));
            out.extend(outliers);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_also_before_1970() {
        assert_eq!(bucket_of(125, 60), 120);
        assert_eq!(bucket_of(-1, 60), -60);
        assert_eq!(bucket_of(-60, 60), -60);
        assert_eq!(bucket_of(0, 60), 0);
    }

    #[test]
    fn widths_and_counts_are_checked() {
        assert!(micros_of(Duration::zero()).is_err());
        assert!(micros_of(Duration::microseconds(-5)).is_err());
        assert_eq!(micros_of(Duration::hours(1)).unwrap(), 3_600_000_000);
        assert!(validate_n(0).is_err());
        assert!(validate_q(1.01).is_err());
        assert!(validate_q(f64::NAN).is_err());
    }
}
