//! Retention on PostgreSQL: partitions wholly older than the horizon are
//! dropped whole; only the partition the horizon cuts through is deleted
//! from row by row. Each partition's work holds the retention lock that
//! folds hold too (`fold.rs`), so that hosts cleaning up and folding at
//! once take turns, and a partition another host dropped meanwhile is
//! passed over.

use super::schema::partition_indexes;
use super::Columns;
use super::PgStore;
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::rollup::row::rollup_table;

/// The metric tables, by kind.
const TABLES: [(MetricKind, &str); 3] = [
    (MetricKind::Task, "task_metrics"),
    (MetricKind::Agent, "agent_metrics"),
    (MetricKind::Swarm, "swarm_metrics"),
];

/// One monthly partition: its name and the first instant (µs) of the
/// month and of the next.
pub(super) struct Partition {
    pub name: String,
    pub first: i64,
    pub next: i64,
}

impl PgStore {
    /// The partitions of `table`, oldest first, with their months read
    /// from the bounds PostgreSQL keeps for them.
    pub(super) fn partitions_of(&self, table: &'static str) -> Result<Vec<Partition>> {
        let rows = self
            .conn()?
            .query(
                "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) \
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = $1::text::regclass",
                &[&table],
            )
            .map_err(self.error("list partitions"))?;
        let mut partitions = Vec::new();
        for row in rows {
            let name: String = row.column(0)?;
            // A partition another host is dropping right now may have no
            // bound left to read: it is gone for this caller's purposes.
            let Some(bound) = row.get::<_, Option<String>>(1) else {
                continue;
            };
            let (first, next) = bounds(&bound).ok_or_else(|| Error::CorruptRow {
                table,
                reason: format!("partition {name} has bounds {bound:?}"),
            })?;
            partitions.push(Partition { name, first, next });
        }
        partitions.sort_by_key(|p| p.first);
        Ok(partitions)
    }

    /// Deletes every metric before `cutoff` (µs): drops the partitions
    /// that end at or before it, deletes the older rows of the one it cuts.
    /// Returns the rows deleted per kind.
    pub fn cleanup_before(&self, cutoff: i64) -> Result<Vec<(MetricKind, u64)>> {
        let mut report = Vec::new();
        for (kind, table) in TABLES {
            let mut deleted = 0u64;
            for partition in self.partitions_of(table)? {
                if partition.first >= cutoff {
                    break;
                }
                let name = &partition.name;
                let whole = partition.next <= cutoff;
                let n = self.in_retention(name, |tx| {
                    if whole {
                        // Counted and dropped in one transaction, so that
                        // the count is what went.
                        let n: i64 = tx
                            .query_one(&format!("SELECT count(*) FROM \"{name}\""), &[])
                            .map_err(self.error("drop a partition"))?
                            .column(0)?;
                        tx.batch_execute(&format!("DROP TABLE \"{name}\""))
                            .map_err(self.error("drop a partition"))?;
                        Ok(u64::try_from(n).unwrap_or(0))
                    } else {
                        tx.execute(
                            &format!("DELETE FROM \"{name}\" WHERE timestamp < $1"),
                            &[&cutoff],
                        )
                        .map_err(self.error("delete old metrics"))
                    }
                })?;
                if whole {
                    self.forget_partition(table, partition.first)?;
                }
                deleted += n;
            }
            report.push((kind, deleted));
        }
        Ok(report)
    }

    /// Runs `work` on partition `name` in one transaction holding the
    /// retention lock (see `fold.rs`), so that cleanup and folds on other
    /// hosts take turns; nothing (0) when the partition went meanwhile.
    pub(super) fn in_retention(
        &self,
        name: &str,
        work: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<u64>,
    ) -> Result<u64> {
        self.in_fold(|tx| {
            let exists: bool = tx
                .query_one("SELECT to_regclass(quote_ident($1)) IS NOT NULL", &[&name])
                .map_err(self.error("find a partition"))?
                .column(0)?;
            if exists {
                work(tx)
            } else {
                Ok(0)
            }
        })
    }

    /// How many metrics [`cleanup_before`](Self::cleanup_before) would
    /// delete now.
    pub fn count_rows_before(&self, cutoff: i64) -> Result<Vec<(MetricKind, u64)>> {
        let mut report = Vec::new();
        let mut conn = self.read_conn()?;
        for (kind, table) in TABLES {
            let n: i64 = conn
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE timestamp < $1"),
                    &[&cutoff],
                )
                .map_err(self.error("count old metrics"))?
                .column(0)?;
            report.push((kind, u64::try_from(n).unwrap_or(0)));
        }
        Ok(report)
    }
}

impl PgStore {
    /// Deletes every rollup at or before the last bucket given for its
    /// level (`(level, last bucket)` pairs): the rollups that end at or
    /// before a cleanup's horizon. Returns how many went.
    pub fn cleanup_rollups_before(&self, last_buckets: &[(i64, i64)]) -> Result<u64> {
        let mut conn = self.conn()?;
        let mut deleted = 0;
        for (kind, _) in TABLES {
            for &(level, last) in last_buckets {
                let level = level as i16;
                deleted += conn
                    .execute(
                        &format!(
                            "DELETE FROM {} WHERE level = $1 AND bucket <= $2",
                            rollup_table(kind)
                        ),
                        &[&level, &last],
                    )
                    .map_err(self.error("clean up old rollups"))?;
            }
        }
        Ok(deleted)
    }

    /// How many rollups [`cleanup_rollups_before`](Self::cleanup_rollups_before)
    /// would delete now.
    pub fn count_rollups_before(&self, last_buckets: &[(i64, i64)]) -> Result<u64> {
        let mut conn = self.read_conn()?;
        let mut found = 0;
        for (kind, _) in TABLES {
            for &(level, last) in last_buckets {
                let level = level as i16;
                let n: i64 = conn
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM {} WHERE level = $1 AND bucket <= $2",
                            rollup_table(kind)
                        ),
                        &[&level, &last],
                    )
                    .map_err(self.error("count old rollups"))?
                    .column(0)?;
                found += u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(found)
    }
}

impl PgStore {
    /// A server's quick check: it answers, and its schema is the one
    /// this version writes.
    pub(crate) fn quick_check(&self) -> Result<Vec<String>> {
        let version = self.schema_version()?;
        let expected = i64::from(super::schema::PG_SCHEMA_VERSION);
        Ok(if version == expected {
            Vec::new()
        } else {
            vec![format!(
                "schema version {version}, but this version of swarm-metrics writes {expected}"
            )]
        })
    }

    /// The newest task's instant (µs) of each swarm (`None`: tasks
    /// without a swarm).
    pub(crate) fn last_task_by_swarm(&self) -> Result<Vec<(Option<String>, i64)>> {
        self.read_conn()?
            .query(
                "SELECT swarm_id, max(timestamp) FROM task_metrics GROUP BY swarm_id \
                 ORDER BY swarm_id NULLS FIRST",
                &[],
            )
            .map_err(self.error("read the last task of each swarm"))?
            .iter()
            .map(|row| Ok((row.column(0)?, row.column(1)?)))
            .collect()
    }

    /// What is wrong with the store on the server, if anything: a schema
    /// version this crate does not write, a partition that is not one
    /// calendar month under its month's name, and, where the `amcheck`
    /// extension is installed in the database, every b-tree index of the
    /// partitions checked against its table's order.
    pub(crate) fn integrity_check(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let version = self.schema_version()?;
        if version != i64::from(super::schema::PG_SCHEMA_VERSION) {
            problems.push(format!(
                "schema version {version}, but this version of swarm-metrics writes {}",
                super::schema::PG_SCHEMA_VERSION
            ));
        }
        for (_, table) in TABLES {
            for partition in self.partitions_of(table)? {
                let expected = super::schema::month_of(partition.first)
                    .filter(|(first, next, _)| (*first, *next) == (partition.first, partition.next))
                    .map(|(_, _, name)| format!("{table}_{name}"));
                if expected.as_deref() != Some(partition.name.as_str()) {
                    problems.push(format!(
                        "partition {} covers {}..{} µs, not one calendar month under its name",
                        partition.name, partition.first, partition.next
                    ));
                }
            }
        }
        let mut conn = self.read_conn()?;
        let amcheck: bool = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'amcheck')",
                &[],
            )
            .map_err(self.error("check integrity"))?
            .column(0)?;
        if amcheck {
            let indexes = conn
                .query(
                    &format!(
                        "SELECT c.oid, c.relname::text {}",
                        partition_indexes("btree")
                    ),
                    &[],
                )
                .map_err(self.error("check integrity"))?;
            for index in indexes {
                let oid: postgres::types::Oid = index.column(0)?;
                let name: String = index.column(1)?;
                if let Err(e) =
                    conn.execute("SELECT bt_index_check($1::oid::regclass, true)", &[&oid])
                {
                    problems.push(format!("index {name}: {}", super::PostgresError(e)));
                }
            }
        }
        Ok(problems)
    }
}

/// The two numbers of `FOR VALUES FROM ('a') TO ('b')`.
fn bounds(expression: &str) -> Option<(i64, i64)> {
    let numbers: Vec<i64> = expression
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter(|part| !part.is_empty() && *part != "-")
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    match numbers[..] {
        [first, next] => Some((first, next)),
        _ => None,
    }
}

impl PgStore {
    /// `VACUUM (ANALYZE)` of the metric tables: space of deleted rows made
    /// reusable and statistics refreshed, beside concurrent writers. The
    /// tables' sizes before and after.
    pub fn vacuum_tables(&self) -> Result<(u64, u64)> {
        let before = self.size()?;
        self.conn()?
            .batch_execute("VACUUM (ANALYZE) task_metrics, agent_metrics, swarm_metrics")
            .map_err(self.error("vacuum"))?;
        Ok((before, self.size()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_bounds_are_read() {
        assert_eq!(
            bounds("FOR VALUES FROM ('1740787200000000') TO ('1743465600000000')"),
            Some((1_740_787_200_000_000, 1_743_465_600_000_000))
        );
        assert_eq!(
            bounds("FOR VALUES FROM ('-86400000000') TO ('0')"),
            Some((-86_400_000_000, 0))
        );
        assert_eq!(bounds("DEFAULT"), None);
    }
}
