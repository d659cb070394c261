//! The PostgreSQL schema: versioned like the SQLite one, applied in one
//! transaction under an advisory lock (so that hosts opening the store at
//! once migrate it once), and the monthly partitions writes need.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use postgres::Client;

use super::Columns;
use super::{error_at, PgStore};
use crate::error::{Error, Result};
use crate::model::record::MetricKind;

/// The migrations, in order; the schema version is how many have run.
const MIGRATIONS: [&str; 7] = [
    // 1: task metrics, range-partitioned by time.
    r#"
    CREATE TABLE task_metrics (
        timestamp     bigint NOT NULL,
        task_id       text COLLATE "C" NOT NULL,
        agent_id      text COLLATE "C" NOT NULL,
        swarm_id      text COLLATE "C",
        result        smallint NOT NULL CHECK (result BETWEEN 0 AND 3),
        duration_ms   bigint NOT NULL CHECK (duration_ms >= 0),
        tokens_used   bigint NOT NULL CHECK (tokens_used >= 0),
        files_changed bigint NOT NULL CHECK (files_changed >= 0),
        PRIMARY KEY (task_id, timestamp)
    ) PARTITION BY RANGE (timestamp);
    CREATE INDEX task_metrics_time ON task_metrics USING brin (timestamp);
    CREATE INDEX task_metrics_agent ON task_metrics (agent_id, timestamp);
    CREATE INDEX task_metrics_swarm ON task_metrics (swarm_id, timestamp);
    "#,
    // 2: agent and swarm metrics, identified by (id, type, time, value) as
    // in SQLite; ids from a sequence, in the order metrics were stored.
    r#"
    CREATE SEQUENCE agent_metric_ids;
    CREATE TABLE agent_metrics (
        metric_id   bigint NOT NULL DEFAULT nextval('agent_metric_ids'),
        timestamp   bigint NOT NULL,
        agent_id    text COLLATE "C" NOT NULL,
        metric_type smallint NOT NULL,
        value       double precision NOT NULL,
        metadata    text,
        PRIMARY KEY (agent_id, metric_type, timestamp, value)
    ) PARTITION BY RANGE (timestamp);
    CREATE INDEX agent_metrics_time ON agent_metrics USING brin (timestamp);
    CREATE INDEX agent_metrics_type ON agent_metrics (metric_type, timestamp);
    CREATE SEQUENCE swarm_metric_ids;
    CREATE TABLE swarm_metrics (
        metric_id   bigint NOT NULL DEFAULT nextval('swarm_metric_ids'),
        timestamp   bigint NOT NULL,
        swarm_id    text COLLATE "C" NOT NULL,
        metric_type smallint NOT NULL,
        value       double precision NOT NULL,
        metadata    text,
        PRIMARY KEY (swarm_id, metric_type, timestamp, value)
    ) PARTITION BY RANGE (timestamp);
    CREATE INDEX swarm_metrics_time ON swarm_metrics USING brin (timestamp);
    CREATE INDEX swarm_metrics_type ON swarm_metrics (metric_type, timestamp);
    "#,
    // 3: time indexes that stay summarized. A BRIN range is only of use
    // once summarized; without autosummarize that waits for a VACUUM, and
    // a range query reads every page written since. Smaller ranges narrow
    // what a day's query reads.
    r#"
    DROP INDEX task_metrics_time;
    CREATE INDEX task_metrics_time ON task_metrics USING brin (timestamp)
        WITH (pages_per_range = 32, autosummarize = on);
    DROP INDEX agent_metrics_time;
    CREATE INDEX agent_metrics_time ON agent_metrics USING brin (timestamp)
        WITH (pages_per_range = 32, autosummarize = on);
    DROP INDEX swarm_metrics_time;
    CREATE INDEX swarm_metrics_time ON swarm_metrics USING brin (timestamp)
        WITH (pages_per_range = 32, autosummarize = on);
    "#,
    // 4: the rollups of tiered retention, one row per level (1 hourly, 2
    // daily), bucket start and key, holding the summary SQLite's rows
    // hold. Tasks without a swarm are rolled up under the swarm '' (no
    // swarm id is empty). Small enough to need no partitions.
    r#"
    CREATE TABLE task_summaries (
        level     smallint NOT NULL CHECK (level IN (1, 2)),
        bucket    bigint NOT NULL,
        agent_id  text COLLATE "C" NOT NULL,
        swarm_id  text COLLATE "C" NOT NULL,
        success   bigint NOT NULL CHECK (success >= 0),
        failure   bigint NOT NULL CHECK (failure >= 0),
        timeout   bigint NOT NULL CHECK (timeout >= 0),
        cancelled bigint NOT NULL CHECK (cancelled >= 0),
        data      bytea NOT NULL,
        PRIMARY KEY (level, bucket, agent_id, swarm_id)
    );
    CREATE TABLE agent_summaries (
        level       smallint NOT NULL CHECK (level IN (1, 2)),
        bucket      bigint NOT NULL,
        agent_id    text COLLATE "C" NOT NULL,
        metric_type smallint NOT NULL,
        count       bigint NOT NULL CHECK (count >= 0),
        data        bytea NOT NULL,
        PRIMARY KEY (level, bucket, agent_id, metric_type)
    );
    CREATE TABLE swarm_summaries (
        level       smallint NOT NULL CHECK (level IN (1, 2)),
        bucket      bigint NOT NULL,
        swarm_id    text COLLATE "C" NOT NULL,
        metric_type smallint NOT NULL,
        count       bigint NOT NULL CHECK (count >= 0),
        data        bytea NOT NULL,
        PRIMARY KEY (level, bucket, swarm_id, metric_type)
    );
    "#,
    // 5: alert states and their history, as in SQLite's migration 8.
    r#"
    CREATE TABLE alert_states (
        rule         text COLLATE "C" NOT NULL,
        group_key    text COLLATE "C" NOT NULL,
        group_by     text NOT NULL,
        state        smallint NOT NULL CHECK (state BETWEEN 1 AND 3),
        active_since bigint,
        cleared_at   bigint,
        evaluated_at bigint NOT NULL,
        figures      text NOT NULL,
        PRIMARY KEY (rule, group_key)
    );
    CREATE TABLE alert_rules (
        rule         text COLLATE "C" NOT NULL PRIMARY KEY,
        evaluated_at bigint NOT NULL
    );
    CREATE TABLE alert_history (
        at         bigint NOT NULL,
        rule       text COLLATE "C" NOT NULL,
        group_key  text COLLATE "C" NOT NULL,
        group_by   text NOT NULL,
        from_state smallint NOT NULL CHECK (from_state BETWEEN 0 AND 3),
        to_state   smallint NOT NULL CHECK (to_state BETWEEN 0 AND 3),
        figures    text NOT NULL,
        PRIMARY KEY (at, rule, group_key, to_state)
    );
    "#,
    // 6: what tasks cost, as in SQLite's migration 9, in plain columns:
    // the input tokens (output is tokens_used minus them, a generated
    // column that measures read as the others), the cached
    // ones, the model and provider, and the cost in micro-dollars with
    // whether it is the task's own bill (never re-priced). Prices in
    // micro-dollars per million tokens.
    r#"
    ALTER TABLE task_metrics
        ADD COLUMN model              text COLLATE "C",
        ADD COLUMN provider           text COLLATE "C",
        ADD COLUMN input_tokens       bigint CHECK (input_tokens >= 0),
        ADD COLUMN cache_read_tokens  bigint CHECK (cache_read_tokens >= 0),
        ADD COLUMN cache_write_tokens bigint CHECK (cache_write_tokens >= 0),
        ADD COLUMN cost_micros        bigint CHECK (cost_micros BETWEEN 0 AND 1000000000000000),
        ADD COLUMN cost_billed        boolean NOT NULL DEFAULT false,
        ADD COLUMN output_tokens      bigint GENERATED ALWAYS AS (tokens_used - input_tokens) STORED;
    CREATE TABLE prices (
        model       text COLLATE "C" NOT NULL,
        valid_from  bigint NOT NULL,
        input       bigint NOT NULL CHECK (input >= 0),
        output      bigint NOT NULL CHECK (output >= 0),
        cache_read  bigint NOT NULL CHECK (cache_read >= 0),
        cache_write bigint NOT NULL CHECK (cache_write >= 0),
        PRIMARY KEY (model, valid_from)
    );
    "#,
    // 7: the OpenTelemetry trace and span a task was recorded from: the
    // trace id's 16 bytes, then the span id's 8 (as the file's usage blob
    // ends with them).
    r#"
    ALTER TABLE task_metrics ADD COLUMN trace bytea CHECK (octet_length(trace) = 24);
    "#,
];

/// The schema version this version of the crate writes.
pub(crate) const PG_SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// A key for `pg_advisory_xact_lock`: "swarm-me" in ASCII.
const MIGRATION_LOCK: i64 = 0x7377_6172_6d2d_6d65;

/// Creates the schema, or brings it to [`PG_SCHEMA_VERSION`].
pub(super) fn migrate(client: &mut Client, server: &str) -> Result<()> {
    let err = |operation| error_at(server, operation);
    let mut tx = client.transaction().map_err(err("migrate the schema"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err("lock the schema"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS metrics_schema_info (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .map_err(err("create the schema table"))?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM metrics_schema_info", &[])
        .map_err(err("read the schema version"))?
        .column(0)?;
    let found = found.unwrap_or(0);
    if found > PG_SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: server.into(),
            found: i64::from(found),
            supported: i64::from(PG_SCHEMA_VERSION),
        });
    }
    for (version, migration) in (1..).zip(MIGRATIONS).skip(found as usize) {
        tx.batch_execute(migration)
            .map_err(err("migrate the schema"))?;
        tx.execute(
            "INSERT INTO metrics_schema_info (version) VALUES ($1)",
            &[&version],
        )
        .map_err(err("record the schema version"))?;
    }
    tx.commit().map_err(err("migrate the schema"))
}

/// The first instant (µs) of the month holding `t` (µs), and of the next.
pub(super) fn month_of(t: i64) -> Option<(i64, i64, String)> {
    let at = DateTime::<Utc>::from_timestamp_micros(t)?;
    let first = Utc
        .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()?;
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    let next = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single()?;
    let name = format!("y{:04}m{:02}", at.year(), at.month());
    Some((first.timestamp_micros(), next.timestamp_micros(), name))
}

/// A monthly partition to create: its first instant, the next month's,
/// and its name's suffix (`y2025m03`).
pub(super) type Month = (i64, i64, String);

/// The months rows at `timestamps` (µs) fall in, each once, in the order
/// first met. Rows of a batch mostly share a month: one comparison each.
pub(super) fn months_of(timestamps: impl IntoIterator<Item = i64>) -> Result<Vec<Month>> {
    let mut months: Vec<Month> = Vec::new();
    for t in timestamps {
        if months
            .iter()
            .any(|(first, next, _)| (*first..*next).contains(&t))
        {
            continue;
        }
        let month = month_of(t).ok_or_else(|| {
            Error::invalid("timestamp", format!("{t} µs is outside the calendar"))
        })?;
        months.push(month);
    }
    Ok(months)
}

/// The statement creating `table`'s partition for `month`.
pub(super) fn partition_sql(table: &str, (first, next, name): &Month) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS \"{table}_{name}\" PARTITION OF {table} \
         FOR VALUES FROM ({first}) TO ({next})"
    )
}

/// Whether `e` says the partition was created by another connection
/// between our check and ours: it exists, which is all we need.
pub(super) fn created_meanwhile(e: &postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("42P07" | "23505"))
}

impl PgStore {
    /// Of the `months` rows of `table` go into, those whose partitions
    /// are not known to exist.
    pub(super) fn missing_partitions(
        &self,
        table: &'static str,
        mut months: Vec<Month>,
    ) -> Result<Vec<Month>> {
        let known = self.known_partitions()?;
        months.retain(|month| !known.contains(&(table, month.0)));
        Ok(months)
    }

    /// Records that `table`'s partition starting at `first` exists.
    pub(super) fn know_partition(&self, table: &'static str, first: i64) -> Result<()> {
        self.known_partitions()?.insert((table, first));
        Ok(())
    }

    /// Creates the monthly partitions of `table` that rows at `timestamps`
    /// (µs) go into, unless known to exist, on the store's own connection
    /// for schema changes: each in a statement of its own, committed at
    /// once. Creating a partition waits until no transaction holds a lock
    /// on the table, so a write creates its partitions this way only
    /// before its transaction has written (see `PgWriter::write`).
    pub(super) fn ensure_partitions(
        &self,
        table: &'static str,
        timestamps: impl IntoIterator<Item = i64>,
    ) -> Result<()> {
        self.ensure_months(table, months_of(timestamps)?)
    }

    /// [`ensure_partitions`](Self::ensure_partitions) of rows in `months`.
    pub(super) fn ensure_months(&self, table: &'static str, months: Vec<Month>) -> Result<()> {
        let missing = self.missing_partitions(table, months)?;
        if missing.is_empty() {
            return Ok(());
        }
        // A consistent read open on this thread holds the table's lock
        // that the new partition would wait for: waiting would be for
        // ever (or until the lock timeout), so say so at once.
        if crate::engine::pinning::is_pinned(self.id) {
            return Err(Error::Unsupported {
                operation: "storing into a month without a partition inside consistent()",
                backend: "PostgreSQL",
            });
        }
        self.with_ddl_connection(|conn| {
            for month in missing {
                if let Err(e) = conn.batch_execute(&partition_sql(table, &month)) {
                    if !created_meanwhile(&e) {
                        return Err(self.error("create a partition")(e));
                    }
                }
                self.know_partition(table, month.0)?;
            }
            Ok(())
        })
    }

    /// Forgets that the partition of `table` starting at `first` exists
    /// (it was dropped).
    pub(super) fn forget_partition(&self, table: &'static str, first: i64) -> Result<()> {
        self.known_partitions()?.remove(&(table, first));
        Ok(())
    }

    /// Runs `write`, and once more after forgetting the partitions known
    /// to exist if PostgreSQL found no partition for a row: retention on
    /// another host dropped one this store still knew of.
    pub(super) fn retrying_partitions<T>(&self, write: impl Fn() -> Result<T>) -> Result<T> {
        match write() {
            Err(Error::Postgres { source, .. }) if source.code() == Some("23514") => {
                self.known_partitions()?.clear();
                write()
            }
            other => other,
        }
    }

    /// The set of partitions known to exist.
    fn known_partitions(&self) -> Result<std::sync::MutexGuard<'_, HashSet<(&'static str, i64)>>> {
        self.partitions
            .lock()
            .map_err(|_| Error::Internal("a thread panicked while creating a partition"))
    }

    /// The partitions of this month and the next, so that the first
    /// writes of a month do not wait for one.
    pub(super) fn create_partitions_ahead(&self) -> Result<()> {
        let now = crate::model::record::now().timestamp_micros();
        let next_month = month_of(now).map_or(now, |(_, next, _)| next);
        for table in ["task_metrics", "agent_metrics", "swarm_metrics"] {
            self.ensure_partitions(table, [now, next_month])?;
        }
        Ok(())
    }

    /// The table and id column of agent or swarm metrics.
    pub(super) fn entity_table(kind: MetricKind) -> (&'static str, &'static str) {
        match kind {
            MetricKind::Agent => ("agent_metrics", "agent_id"),
            _ => ("swarm_metrics", "swarm_id"),
        }
    }

    /// Summarizes the time index ranges written since they were last
    /// summarized, so that range queries skip what they do not need at
    /// once rather than after the next autovacuum.
    pub(super) fn summarize_time_indexes(&self) -> Result<()> {
        self.conn()?
            .batch_execute(&format!(
                "SELECT brin_summarize_new_values(c.oid) {}",
                partition_indexes("brin")
            ))
            .map_err(self.error("summarize the time indexes"))
    }

    /// Refreshes the planner's statistics of the partitions written in
    /// transactions since the last refresh. Only those partitions:
    /// analyzing a partitioned table samples every partition, and then the
    /// whole table again (twice the work, growing with history), for
    /// estimates that queries here take from the partitions they scan.
    pub(super) fn analyze_partitions_written(&self) -> Result<()> {
        let written: Vec<String> = std::mem::take(&mut *self.partitions_written()?)
            .into_iter()
            .map(|name| format!("\"{name}\""))
            .collect();
        if written.is_empty() {
            return Ok(());
        }
        self.conn()?
            .batch_execute(&format!("ANALYZE {}", written.join(", ")))
            .map_err(self.error("refresh statistics"))
    }

    /// The partitions (by full name) written in transactions since the
    /// last refresh.
    pub(super) fn partitions_written(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::BTreeSet<String>>> {
        self.partitions_written
            .lock()
            .map_err(|_| Error::Internal("a thread panicked while recording a write"))
    }

    /// The schema version recorded on the server.
    pub(crate) fn schema_version(&self) -> Result<i64> {
        let version: Option<i32> = self
            .read_conn()?
            .query_one("SELECT max(version) FROM metrics_schema_info", &[])
            .map_err(self.error("read the schema version"))?
            .column(0)?;
        Ok(i64::from(version.unwrap_or(0)))
    }
}

/// `FROM … WHERE …` of the indexes of access method `method` (`brin`,
/// `btree`) on the partitions of the three metric tables, as `c`
/// (`pg_class`: `c.oid`, `c.relname`).
pub(super) fn partition_indexes(method: &str) -> String {
    format!(
        "FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_am a ON a.oid = c.relam \
         JOIN pg_inherits h ON h.inhrelid = i.indrelid \
         WHERE a.amname = '{method}' AND h.inhparent IN \
             ('task_metrics'::regclass, 'agent_metrics'::regclass, 'swarm_metrics'::regclass)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_and_end_on_the_first() {
        let t = Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 59).unwrap();
        let (first, next, name) = month_of(t.timestamp_micros()).unwrap();
        assert_eq!(name, "y2025m12");
        assert_eq!(
            first,
            Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0)
                .unwrap()
                .timestamp_micros()
        );
        assert_eq!(
            next,
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp_micros()
        );
        assert!(first <= t.timestamp_micros() && t.timestamp_micros() < next);
    }
}
