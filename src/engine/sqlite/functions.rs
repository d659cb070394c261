//! The SQL aggregate functions the file's queries use, registered on each
//! connection, and the select list that reads a column's [`Stat`] with
//! them: sums and extremes by SQLite, the Welford state by
//! `swarm_running`, so that raw rows merge with rollups exactly.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use crate::engine::sqlite::columns::measured_sql;
use crate::error::{Error, Result};
use crate::model::record::AggregationType;
use crate::stats::running::{Running, Stat};

/// The select list computing a raw column's stat in SQL (aliased `m`);
/// [`raw_stat`] decodes it.
pub(crate) fn raw_stat_columns(column: &str) -> String {
    let c = measured_sql(column);
    format!("total({c}), min({c}), max({c}), {RUNNING_FUNCTION}({c})")
}

/// The stat selected by [`raw_stat_columns`], from column `at` on, of an
/// integer column when `int`.
pub(crate) fn raw_stat(row: &Row<'_>, at: usize, int: bool) -> Result<Stat> {
    let get_err = || Error::sqlite("aggregate metrics");
    let mut stat = Stat::new(int, false);
    let bytes: Vec<u8> = row.get(at + 3).map_err(get_err())?;
    let running = Running::from_bytes(&bytes).unwrap_or_default();
    stat.welford = running.welford;
    if stat.count() == 0 {
        return Ok(stat);
    }
    if int {
        stat.sum_int = running.int_sum;
        stat.min_int = row.get(at + 1).map_err(get_err())?;
        stat.max_int = row.get(at + 2).map_err(get_err())?;
        stat.min = stat.min_int as f64;
        stat.max = stat.max_int as f64;
    } else {
        stat.sum_real = row.get(at).map_err(get_err())?;
        stat.min = row.get(at + 1).map_err(get_err())?;
        stat.max = row.get(at + 2).map_err(get_err())?;
    }
    Ok(stat)
}

/// The SQL name of the sample standard deviation aggregate.
const STDDEV_FUNCTION: &str = "swarm_stddev_samp";

/// The SQL name of the aggregate returning a [`Running`] state (for merging
/// raw rows with rollups).
const RUNNING_FUNCTION: &str = "swarm_running";

/// The SQL aggregate function computing `aggregation`.
pub(crate) fn sql_function(aggregation: AggregationType) -> &'static str {
    match aggregation {
        AggregationType::Avg => "avg",
        // sum() of integers fails with "integer overflow" past i64;
        // total() sums in floating point (compensated, so exact while
        // the sum fits in 53 bits) and never fails. The answer is an f64
        // either way, as it is from the server's numeric sum().
        AggregationType::Sum => "total",
        AggregationType::Count => "count",
        AggregationType::Min => "min",
        AggregationType::Max => "max",
        AggregationType::Stddev => STDDEV_FUNCTION,
    }
}

/// Registers the SQL functions the queries use on one connection.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let stddev: fn(Running) -> Option<f64> = |r| r.welford.sample_stddev();
    conn.create_aggregate_function(STDDEV_FUNCTION, 1, flags, RunningAggregate(stddev))?;
    conn.create_aggregate_function(
        RUNNING_FUNCTION,
        1,
        flags,
        RunningAggregate(Running::to_bytes),
    )?;
    crate::engine::sqlite::usage::register_usage_functions(conn)
}

/// An SQL aggregate that folds its numeric argument into a [`Running`]
/// state (skipping other values, as SQL aggregates skip NULL) and answers
/// with `finish` of the state.
struct RunningAggregate<T>(fn(Running) -> T);

impl<T: rusqlite::ToSql> rusqlite::functions::Aggregate<Running, T> for RunningAggregate<T> {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Running> {
        Ok(Running::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Running) -> rusqlite::Result<()> {
        match ctx.get_raw(0) {
            ValueRef::Integer(i) => {
                acc.welford.push(i as f64);
                acc.int_sum += i128::from(i);
            }
            ValueRef::Real(x) => acc.welford.push(x),
            _ => {}
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Running>) -> rusqlite::Result<T> {
        Ok((self.0)(acc.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_sums_of_integers_stay_exact_past_64_bits() {
        let conn = Connection::open_in_memory().unwrap();
        register_functions(&conn).unwrap();
        conn.execute_batch("CREATE TABLE m (x INTEGER); INSERT INTO m VALUES (9223372036854775807), (9223372036854775807), (1);")
            .unwrap();
        let sql = format!("SELECT {} FROM m", raw_stat_columns("x"));
        let stat = conn
            .query_row(&sql, [], |row| Ok(raw_stat(row, 0, true).unwrap()))
            .unwrap();
        assert_eq!(stat.count(), 3);
        assert_eq!(stat.sum_int, 2 * i128::from(i64::MAX) + 1);
        assert_eq!((stat.min_int, stat.max_int), (1, i64::MAX));
    }
}
