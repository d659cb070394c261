//! The calls of the engine contract that the server answers by putting
//! its own answers in the shape the façade hands out (the others are the
//! server's own functions of the contract's names).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use super::{Metrics, PgStore, PlannedQuery, Written};
use crate::engine::{task_order_sql, AgentTotalsSpan};
use crate::error::Result;
use crate::model::analytics::{BucketValue, Grouped, Measure, SeriesRead, Summary};
use crate::model::answer::{Aggregate, Percentile, SuccessRate};
use crate::model::batch::Parsed;
use crate::model::batch::{stream_in_chunks, BatchReport, MetricBatch, StreamReport};
use crate::model::filter::{from_micros, Filter, GroupBy};
use crate::model::record::{
    AgentMetric, AggregationType, Entity, MetricKind, Stored, SwarmMetric, TaskMetric,
};
use crate::model::reports::TableStats;
use crate::model::reports::{CleanupReport, VacuumReport};
use crate::model::shapes::GroupRead;
use crate::model::shapes::QueryShape;
use crate::model::shapes::RowOrder;
use crate::rollup::row::RollupRecord;
use crate::rollup::tiers::whole_buckets_before;

impl PgStore {
    pub(crate) fn location(&self) -> &Path {
        Path::new(self.server())
    }

    pub(crate) fn is_read_only(&self) -> bool {
        false
    }

    pub(crate) fn store_tasks(&self, tasks: &[TaskMetric]) -> Result<usize> {
        let batch = Metrics {
            tasks,
            agents: &[],
            swarms: &[],
        };
        Ok(self.store(batch)?.new_tasks)
    }

    pub(crate) fn store_agents(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>> {
        let records: Vec<_> = metrics.iter().map(Entity::record).collect();
        let batch = Metrics {
            tasks: &[],
            agents: &records,
            swarms: &[],
        };
        Ok(self.store(batch)?.agent_ids)
    }

    pub(crate) fn store_swarms(&self, metrics: &[SwarmMetric]) -> Result<Vec<i64>> {
        let records: Vec<_> = metrics.iter().map(Entity::record).collect();
        let batch = Metrics {
            tasks: &[],
            agents: &[],
            swarms: &records,
        };
        Ok(self.store(batch)?.swarm_ids)
    }

    pub(crate) fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        with_records(batch, |metrics| Ok(self.store(metrics)?.into()))
    }

    pub(crate) fn store_stream(
        &self,
        metrics: impl IntoIterator<Item = Result<Parsed>>,
    ) -> Result<StreamReport> {
        self.in_transaction(|writer| {
            stream_in_chunks(metrics, |chunk| {
                with_records(chunk, |records| Ok(writer.write(records)?.into()))
            })
        })
    }

    pub(crate) fn task_rows(
        &self,
        filter: &Filter,
        limit: i64,
        order: RowOrder,
    ) -> Result<Vec<TaskMetric>> {
        self.get_tasks(filter, limit, task_order_sql(order))
    }

    pub(crate) fn agent_rows(
        &self,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Stored<AgentMetric>>> {
        let rows = self.get_entities(MetricKind::Agent, filter, limit)?;
        Ok(rows.into_iter().map(AgentMetric::stored).collect())
    }

    pub(crate) fn swarm_rows(
        &self,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Stored<SwarmMetric>>> {
        let rows = self.get_entities(MetricKind::Swarm, filter, limit)?;
        Ok(rows.into_iter().map(SwarmMetric::stored).collect())
    }

    pub(crate) fn each_task<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(TaskMetric) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.for_each_task(filter, visit)
    }

    pub(crate) fn each_agent<B>(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Stored<AgentMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.for_each_entity(MetricKind::Agent, filter, |r| visit(AgentMetric::stored(r)))
    }

    pub(crate) fn each_swarm<B>(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Stored<SwarmMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.for_each_entity(MetricKind::Swarm, filter, |r| visit(SwarmMetric::stored(r)))
    }

    pub(crate) fn aggregate_by(
        &self,
        read: &GroupRead<'_>,
        aggregation: AggregationType,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        let pairs = self.aggregates_by_group(read.kind, aggregation, read.group_by, read.filter)?;
        Ok(by_key(pairs))
    }

    pub(crate) fn percentile_by(
        &self,
        read: &GroupRead<'_>,
        q: f64,
    ) -> Result<Vec<Grouped<Percentile>>> {
        let pairs = self.percentiles_by_group(read.kind, q, read.group_by, read.filter)?;
        Ok(by_key(pairs))
    }

    pub(crate) fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>> {
        Ok(by_key(PgStore::rates_by_group(self, group_by, filter)?))
    }

    pub(crate) fn series(
        &self,
        series: &SeriesRead<'_>,
        measure: Measure,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        let (kind, filter, width) = (series.kind, series.filter, series.width);
        Ok(match measure {
            Measure::Aggregate(aggregation) => self
                .aggregate_series(kind, aggregation, width, filter)?
                .into_iter()
                .map(|(start, a)| (start, BucketValue::Aggregate(a)))
                .collect(),
            Measure::Percentile(q) => self
                .percentile_series(kind, q, width, filter)?
                .into_iter()
                .map(|(start, p)| (start, BucketValue::Percentile(p)))
                .collect(),
            Measure::SuccessRate => self
                .success_rate_series(width, filter)?
                .into_iter()
                .map(|(start, r)| (start, BucketValue::SuccessRate(r)))
                .collect(),
        })
    }

    pub(crate) fn agent_totals(&self, filter: &Filter) -> Result<AgentTotalsSpan> {
        let (agents, span) = self.agent_totals_over(filter)?;
        Ok((agents, span.unwrap_or((i64::MAX, i64::MIN))))
    }

    pub(crate) fn summary_of_rows(&self, _filter: &Filter) -> Result<Option<Summary>> {
        // The server answers each part of a summary in one query of its
        // own: it is composed from those answers.
        Ok(None)
    }

    pub(crate) fn delete_before(&self, cutoff: i64) -> Result<CleanupReport> {
        let mut report = CleanupReport::of(self.cleanup_before(cutoff)?);
        report.rollups = self.cleanup_rollups_before(&whole_buckets_before(cutoff))?;
        Ok(report)
    }

    pub(crate) fn count_before(&self, cutoff: i64) -> Result<CleanupReport> {
        let mut report = CleanupReport::of(self.count_rows_before(cutoff)?);
        report.rollups = self.count_rollups_before(&whole_buckets_before(cutoff))?;
        Ok(report)
    }

    pub(crate) fn each_rollup(
        &self,
        visit: impl FnMut(RollupRecord) -> ControlFlow<()>,
    ) -> Result<()> {
        self.for_each_rollup(visit)
    }

    pub(crate) fn insert_rollups(&self, records: Vec<RollupRecord>) -> Result<u64> {
        self.write_rollups(&records)
    }

    pub(crate) fn table_stats(&self, kind: MetricKind) -> Result<TableStats> {
        let (rows, oldest, newest) = self.table_span(kind)?;
        let (hourly_rollups, daily_rollups, oldest_rollup) = self.rollup_counts(kind)?;
        Ok(TableStats {
            rows,
            oldest: oldest.and_then(from_micros),
            newest: newest.and_then(from_micros),
            hourly_rollups,
            daily_rollups,
            oldest_rollup: oldest_rollup.and_then(from_micros),
        })
    }

    pub(crate) fn sizes(&self) -> Result<(u64, u64)> {
        Ok((self.size()?, 0))
    }

    pub(crate) fn vacuum(&self) -> Result<VacuumReport> {
        let (bytes_before, bytes_after) = self.vacuum_tables()?;
        Ok(VacuumReport {
            bytes_before,
            bytes_after,
        })
    }

    pub(crate) fn incremental_vacuum(&self, _max_pages: Option<u32>) -> Result<VacuumReport> {
        // PostgreSQL's VACUUM already works in place, beside writers.
        self.vacuum()
    }

    pub(crate) fn query_plan(
        &self,
        kind: MetricKind,
        shape: QueryShape,
        filter: &Filter,
    ) -> Result<Vec<String>> {
        let query = match shape {
            QueryShape::Rows => PlannedQuery::Rows,
            QueryShape::Aggregate(aggregation) => PlannedQuery::Aggregate(aggregation),
            QueryShape::SuccessRate => PlannedQuery::SuccessRate,
            QueryShape::Percentile => PlannedQuery::Percentile,
        };
        self.explain(kind, query, filter)
    }

    pub(crate) fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
}

/// Runs `write` on a batch as the server's writer takes it.
fn with_records<T>(batch: &MetricBatch, write: impl FnOnce(Metrics<'_>) -> Result<T>) -> Result<T> {
    let agents: Vec<_> = batch.agents.iter().map(Entity::record).collect();
    let swarms: Vec<_> = batch.swarms.iter().map(Entity::record).collect();
    write(Metrics {
        tasks: &batch.tasks,
        agents: &agents,
        swarms: &swarms,
    })
}

impl From<Written> for BatchReport {
    fn from(w: Written) -> Self {
        BatchReport {
            new_tasks: w.new_tasks,
            new_agent_metrics: w.new_agents,
            new_swarm_metrics: w.new_swarms,
            agent_ids: w.agent_ids,
            swarm_ids: w.swarm_ids,
        }
    }
}

/// Groups from `(key, value)` pairs, sorted by key (no key first).
fn by_key<T>(pairs: Vec<(Option<String>, T)>) -> Vec<Grouped<T>> {
    let mut groups: Vec<Grouped<T>> = pairs
        .into_iter()
        .map(|(key, value)| Grouped { key, value })
        .collect();
    groups.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    groups
}
