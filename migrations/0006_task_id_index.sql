-- Migration 6: an index on task ids, so that "what happened to task X"
-- is answered by a search instead of a walk through the whole time order.
--
-- Like the agent index it is partial: rows join it together with the
-- agent index, in batches, when they are marked indexed (see
-- task_index_state), so a single store still writes no index page of its
-- own; queries by task id read the rows past the watermark through the
-- primary key. Task ids that grow with time (counters, time-ordered ids)
-- are appended to its end.
--
-- Each entry holds the task id and the timestamp (the rest of the primary
-- key): about 27 bytes a task. A smaller index keyed by a hash of the id
-- was measured too: about 14 bytes an entry when packed, but a hash spreads
-- the ids of consecutive tasks over the whole index, so that every batch
-- of 1,000 tasks rewrote most of its pages; for ids that grow with time
-- this index writes one page per batch.

CREATE INDEX idx_task_metrics_task_id ON task_metrics (task_id) WHERE indexed = 1;
