//! Batches of new tasks copied straight into their partitions.
//!
//! The general path (`write.rs`) copies a batch into a temporary table and
//! moves it with `INSERT … ON CONFLICT DO NOTHING`, pricing each row on
//! the server: every row is written twice and checked for a conflict one
//! by one. Most batches hold only tasks the store has never seen, so a
//! batch is first copied straight into `task_metrics`, priced here by the
//! same rule as the file (`cost_of`) from the prices in force inside the
//! transaction, in key order like the general path. A task already stored
//! (a retried batch, another host's write of the same task) makes the copy
//! fail on the primary key: it is undone to a savepoint and the batch
//! takes the general path, which keeps the first copy of each task.

use std::collections::HashSet;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::Transaction;

use super::prices::price_row;
use super::write::{TaskRow, TASK_COLUMNS, TASK_TYPES};
use super::PgStore;
use crate::error::Result;
use crate::model::pricing::{PriceBook, Rates};
use crate::model::record::TaskMetric;

impl PgStore {
    /// Copies `tasks` straight into `task_metrics` inside `tx`: `Some`
    /// (all of them new) when none was stored before, `None` when one
    /// was (or a task repeats within the batch), with nothing written.
    pub(super) fn copy_new_tasks(
        &self,
        tx: &mut Transaction<'_>,
        tasks: &[TaskMetric],
    ) -> Result<Option<usize>> {
        let mut in_order: Vec<&TaskMetric> = tasks.iter().collect();
        in_order.sort_by(|a, b| (&a.task_id, a.timestamp).cmp(&(&b.task_id, b.timestamp)));
        if in_order
            .windows(2)
            .any(|w| (&w[0].task_id, w[0].timestamp) == (&w[1].task_id, w[1].timestamp))
        {
            return Ok(None);
        }
        let book = self.price_book(tx, tasks)?;
        let rows: Vec<TaskRow<'_>> = in_order
            .iter()
            .map(|task| TaskRow::of(task)?.priced(&book))
            .collect::<Result<_>>()?;
        let err = |operation| self.error(operation);
        tx.batch_execute("SAVEPOINT direct_copy")
            .map_err(err("copy task metrics"))?;
        match copy_rows(tx, &rows) {
            Ok(()) => {
                tx.batch_execute("RELEASE SAVEPOINT direct_copy")
                    .map_err(err("copy task metrics"))?;
                Ok(Some(rows.len()))
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT direct_copy; RELEASE SAVEPOINT direct_copy",
                )
                .map_err(err("copy task metrics"))?;
                Ok(None)
            }
            Err(e) => Err(err("copy task metrics")(e)),
        }
    }

    /// The prices of the models `tasks` name, as in force in `tx`.
    fn price_book(&self, tx: &mut Transaction<'_>, tasks: &[TaskMetric]) -> Result<PriceBook> {
        let models: HashSet<&str> = tasks
            .iter()
            .filter_map(|t| t.usage.model.as_deref())
            .collect();
        let mut book = PriceBook::default();
        if models.is_empty() {
            return Ok(book);
        }
        let models: Vec<&str> = models.into_iter().collect();
        let rows = tx
            .query(
                "SELECT model, valid_from, input, output, cache_read, cache_write FROM prices \
                 WHERE model = ANY($1) ORDER BY model, valid_from",
                &[&models],
            )
            .map_err(self.error("read prices"))?;
        let prices: Vec<(String, i64, Rates)> =
            rows.iter().map(price_row).collect::<Result<_>>()?;
        for model in models {
            let of_model = prices
                .iter()
                .filter(|(m, _, _)| m == model)
                .map(|&(_, from, rates)| (from, rates))
                .collect();
            book.insert(model, of_model);
        }
        Ok(book)
    }
}

/// Copies the priced rows into `task_metrics` in binary.
fn copy_rows(
    tx: &mut Transaction<'_>,
    rows: &[TaskRow<'_>],
) -> std::result::Result<(), postgres::Error> {
    let sink = tx.copy_in(&format!(
        "COPY task_metrics ({TASK_COLUMNS}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &TASK_TYPES);
    for row in rows {
        writer.write(&row.params())?;
    }
    writer.finish()?;
    Ok(())
}
