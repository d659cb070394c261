"""The reference module's MetricsStorage, rebuilt from its documentation
(schema, API and stated behaviour) so that the benchmark can run the same
workload through it and through swarm_metrics in one run.

What it does as the documentation describes: one SQLite file through
Python's sqlite3 module with its default settings, a connection per thread
("each thread gets its own connection"), a commit per store, timestamps
as text in local time to the second (the documented primary key
``(task_id, timestamp)`` is what collides at one-second resolution), the
documented tables and indexes, and rows returned as dicts. Only the calls
the benchmark uses are here.
"""

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_metrics (
    task_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    duration_ms INTEGER,
    result TEXT NOT NULL,
    tokens_used INTEGER DEFAULT 0,
    files_changed INTEGER DEFAULT 0,
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (task_id, timestamp)
);
CREATE INDEX IF NOT EXISTS idx_task_metrics_agent ON task_metrics(agent_id, timestamp);
CREATE INDEX IF NOT EXISTS idx_task_metrics_time ON task_metrics(timestamp);
CREATE INDEX IF NOT EXISTS idx_task_metrics_result ON task_metrics(result, timestamp);
"""


def _text(ts):
    """Local time as text, to the second."""
    if ts.tzinfo is not None:
        ts = ts.astimezone().replace(tzinfo=None)
    return ts.isoformat(sep=" ", timespec="seconds")


class ReferenceMetricsStorage:
    def __init__(self, db_path=None):
        self.db_path = Path(db_path or ".swarm/metrics.db")
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._get_connection()
        conn.executescript(SCHEMA)
        conn.commit()

    def _get_connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, check_same_thread=False, timeout=30.0)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def store_task_metric(self, task_id, agent_id, duration_ms, result, tokens_used=0,
                          files_changed=0, timestamp=None):
        conn = self._get_connection()
        conn.execute(
            "INSERT OR REPLACE INTO task_metrics (task_id, agent_id, duration_ms, result, "
            "tokens_used, files_changed, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (task_id, agent_id, duration_ms, str(getattr(result, "value", result)), tokens_used,
             files_changed, _text(timestamp or datetime.now())),
        )
        conn.commit()

    def get_task_metrics(self, task_id=None, agent_id=None, result=None, time_range=None,
                         limit=1000):
        query = "SELECT * FROM task_metrics WHERE 1=1"
        params = []
        if task_id:
            query += " AND task_id = ?"
            params.append(task_id)
        if agent_id:
            query += " AND agent_id = ?"
            params.append(agent_id)
        if result:
            query += " AND result = ?"
            params.append(str(getattr(result, "value", result)))
        if time_range:
            query += " AND timestamp BETWEEN ? AND ?"
            params.extend([_text(time_range[0]), _text(time_range[1])])
        query += " ORDER BY timestamp DESC LIMIT ?"
        params.append(limit)
        cursor = self._get_connection().execute(query, params)
        return [dict(row) for row in cursor.fetchall()]

    def bulk_load(self, rows):
        """Fills the table for the read benchmark (not a reference call):
        rows of (task_id, agent_id, duration_ms, result, tokens, files, ts)."""
        conn = self._get_connection()
        conn.executemany(
            "INSERT OR REPLACE INTO task_metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*r[:6], _text(r[6])) for r in rows],
        )
        conn.commit()

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
