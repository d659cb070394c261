//! The file's side of the engine contract: each call goes to the file's
//! own code for it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use sketches_ddsketch::DDSketch;

use super::FileStore;
use crate::engine::{AgentTotalsSpan, Backend};
use crate::error::Result;
use crate::model::analytics::{BucketValue, Grouped, Measure, SeriesRead, Summary};
use crate::model::answer::{Aggregate, GroupValues, Percentile, SuccessRate};
use crate::model::batch::Parsed;
use crate::model::batch::{BatchReport, MetricBatch, StreamReport};
use crate::model::filter::{Filter, GroupBy};
use crate::model::record::{
    AgentMetric, AggregationType, MetricKind, Stored, SwarmMetric, TaskMetric,
};
use crate::model::reports::TableStats;
use crate::model::reports::{CleanupReport, VacuumReport};
use crate::model::shapes::QueryShape;
use crate::model::shapes::RowOrder;
use crate::rollup::row::RollupRecord;
use crate::rollup::tiers::Step;

impl Backend for FileStore {
    fn location(&self) -> &Path {
        self.path()
    }

    fn is_read_only(&self) -> bool {
        FileStore::is_read_only(self)
    }

    fn consistent<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        FileStore::consistent(self, read)
    }

    fn store_tasks(&self, tasks: &[TaskMetric]) -> Result<usize> {
        FileStore::store_tasks(self, tasks)
    }

    fn store_agents(&self, metrics: &[AgentMetric]) -> Result<Vec<i64>> {
        FileStore::store_agents(self, metrics)
    }

    fn store_swarms(&self, metrics: &[SwarmMetric]) -> Result<Vec<i64>> {
        FileStore::store_swarms(self, metrics)
    }

    fn store_batch(&self, batch: &MetricBatch) -> Result<BatchReport> {
        FileStore::store_batch(self, batch)
    }

    fn store_stream(
        &self,
        metrics: impl IntoIterator<Item = Result<Parsed>>,
    ) -> Result<StreamReport> {
        FileStore::store_stream(self, metrics)
    }

    fn task_rows(&self, filter: &Filter, limit: i64, order: RowOrder) -> Result<Vec<TaskMetric>> {
        FileStore::task_rows(self, filter, limit, order)
    }

    fn agent_rows(&self, filter: &Filter, limit: i64) -> Result<Vec<Stored<AgentMetric>>> {
        FileStore::agent_rows(self, filter, limit)
    }

    fn swarm_rows(&self, filter: &Filter, limit: i64) -> Result<Vec<Stored<SwarmMetric>>> {
        FileStore::swarm_rows(self, filter, limit)
    }

    fn each_task<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(TaskMetric) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        FileStore::each_task(self, filter, visit)
    }

    fn each_agent<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<AgentMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        FileStore::each_agent(self, filter, visit)
    }

    fn each_swarm<B>(
        &self,
        filter: &Filter,
        visit: impl FnMut(Stored<SwarmMetric>) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        FileStore::each_swarm(self, filter, visit)
    }

    fn aggregate(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        filter: &Filter,
    ) -> Result<Aggregate> {
        FileStore::aggregate(self, kind, aggregation, filter)
    }

    fn percentiles(
        &self,
        kind: MetricKind,
        qs: &[f64],
        filter: &Filter,
    ) -> Result<Vec<Percentile>> {
        FileStore::percentiles(self, kind, qs, filter)
    }

    fn values(&self, kind: MetricKind, filter: &Filter) -> Result<(Vec<f64>, Option<DDSketch>)> {
        FileStore::values(self, kind, filter)
    }

    fn success_rate(&self, filter: &Filter) -> Result<SuccessRate> {
        FileStore::success_rate(self, filter)
    }

    fn aggregate_by(
        &self,
        kind: MetricKind,
        aggregation: AggregationType,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Aggregate>>> {
        FileStore::aggregate_by(self, kind, aggregation, group_by, filter)
    }

    fn percentile_by(
        &self,
        kind: MetricKind,
        q: f64,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<Percentile>>> {
        FileStore::percentile_by(self, kind, q, group_by, filter)
    }

    fn values_by_group(
        &self,
        kind: MetricKind,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<GroupValues> {
        FileStore::values_by_group(self, kind, group_by, filter)
    }

    fn success_rate_by(
        &self,
        group_by: GroupBy,
        filter: &Filter,
    ) -> Result<Vec<Grouped<SuccessRate>>> {
        FileStore::success_rate_by(self, group_by, filter)
    }

    fn series(
        &self,
        series: &SeriesRead<'_>,
        measure: Measure,
    ) -> Result<BTreeMap<i64, BucketValue>> {
        FileStore::series(self, series, measure)
    }

    fn agent_totals(&self, filter: &Filter) -> Result<AgentTotalsSpan> {
        FileStore::agent_totals(self, filter)
    }

    fn task_span(&self, filter: &Filter) -> Result<Option<(i64, i64)>> {
        FileStore::task_span(self, filter)
    }

    fn summary_of_rows(&self, filter: &Filter) -> Result<Option<Summary>> {
        FileStore::summary_of_rows(self, filter)
    }

    fn retention_step(&self, step: &Step) -> Result<(usize, bool)> {
        FileStore::retention_step(self, step)
    }

    fn has_retention_work(&self, step: &Step) -> Result<bool> {
        FileStore::has_retention_work(self, step)
    }

    fn delete_before(&self, cutoff: i64) -> Result<CleanupReport> {
        FileStore::delete_before(self, cutoff)
    }

    fn count_before(&self, cutoff: i64) -> Result<CleanupReport> {
        FileStore::count_before(self, cutoff)
    }

    fn each_rollup(&self, visit: impl FnMut(RollupRecord) -> ControlFlow<()>) -> Result<()> {
        FileStore::each_rollup(self, visit)
    }

    fn insert_rollups(&self, records: Vec<RollupRecord>) -> Result<u64> {
        FileStore::insert_rollups(self, records)
    }

    fn table_stats(&self, kind: MetricKind) -> Result<TableStats> {
        FileStore::table_stats(self, kind)
    }

    fn sizes(&self) -> Result<(u64, u64)> {
        FileStore::sizes(self)
    }

    fn schema_version(&self) -> Result<i64> {
        FileStore::schema_version(self)
    }

    fn integrity_check(&self) -> Result<Vec<String>> {
        FileStore::integrity_check(self)
    }

    fn vacuum(&self) -> Result<VacuumReport> {
        FileStore::vacuum(self)
    }

    fn incremental_vacuum(&self, max_pages: Option<u32>) -> Result<VacuumReport> {
        FileStore::incremental_vacuum(self, max_pages)
    }

    fn query_plan(
        &self,
        kind: MetricKind,
        shape: QueryShape,
        filter: &Filter,
    ) -> Result<Vec<String>> {
        FileStore::query_plan(self, kind, shape, filter)
    }

    fn checkpoint(&self) -> Result<()> {
        FileStore::checkpoint(self)
    }
}
