//! How task rows keep what has no column of its own, and how queries
//! read it back: whether a row is in the agent and task-id indexes is the
//! sign of its `files_changed` (the partial indexes hold the rows where
//! `files_changed >= 0`, and a query that reads through them says so),
//! and the usage columns of a server are computed from the file's usage
//! blob (src/engine/sqlite/usage.rs).

/// `files_changed` as read back from any row, in the index or not (see
/// [`stored_files`]). A `CASE` is plain bytecode where `max(x, ~x)` is a
/// function call: over 1M rows, 8 ms more than the bare column against
/// 27 ms.
pub(crate) const FILES_CHANGED: &str =
    "CASE WHEN m.files_changed < 0 THEN ~m.files_changed ELSE m.files_changed END";

/// The `files_changed` column of a row that changed `files` files: the
/// count itself once the row is in the agent and task-id indexes, its
/// bitwise complement (−1 − files, always negative) while it waits. A
/// column of its own would cost a record-header byte in every row (see
/// migrations/0010_index_state_in_files.sql); moving rows into the
/// indexes complements the column again, and reads take
/// [`FILES_CHANGED`].
pub(crate) fn stored_files(files: i64, indexed: bool) -> i64 {
    if indexed {
        files
    } else {
        !files
    }
}

/// The SQL of a measured column over the table aliased `m`: the column
/// itself, or what computes it: files from the stored count, the cost
/// and the token types (columns on a server) from the blob.
pub(crate) fn measured_sql(column: &str) -> String {
    match column {
        "cost_micros" => "usage_cost(m.usage)".to_owned(),
        "input_tokens" => "usage_input(m.usage)".to_owned(),
        // NULL without a breakdown, as the input is.
        "output_tokens" => "(m.tokens_used - usage_input(m.usage))".to_owned(),
        "cache_read_tokens" => "usage_cache_read(m.usage)".to_owned(),
        "cache_write_tokens" => "usage_cache_write(m.usage)".to_owned(),
        "files_changed" => FILES_CHANGED.to_owned(),
        _ => format!("m.{column}"),
    }
}
