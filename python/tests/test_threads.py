"""One store shared by Python threads: exact answers while they store, and
calls that release the GIL while the store works."""

import subprocess
import sys
import threading
import time
from datetime import timedelta

from swarm_metrics import MetricsStorage

from model import utc_now


def test_threads_storing_one_task_each_lose_nothing(store):
    threads, per_thread = 8, 150
    errors = []
    done = threading.Event()
    seen_totals = []

    def writer(n):
        try:
            for i in range(per_thread):
                task_id = f"w{n}-{i}"
                store.store_task_metric(task_id, f"agent-{n}", i, "success" if i % 3 else "failure")
                # A store that returned is read back at once.
                assert [r["task_id"] for r in store.get_task_metrics(task_id=task_id)] == [task_id]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader():
        try:
            while not done.is_set():
                rate = store.success_rate()
                assert rate["success"] + rate["failure"] == rate["total"]
                seen_totals.append(rate["total"])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    watcher.join()
    assert errors == []
    assert seen_totals == sorted(seen_totals), "a total went backwards"
    total = threads * per_thread
    rate = store.success_rate()
    assert rate["total"] == total
    assert rate["failure"] == threads * len(range(0, per_thread, 3))
    for n in range(threads):
        assert store.aggregate_metrics("task", "count", filters={"agent_id": f"agent-{n}"})[
            "count"] == per_thread


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


def test_a_store_waiting_on_the_file_lets_other_python_threads_run(tmp_path):
    """Another process holds the file's write lock and lets go only when a
    Python thread of this process tells it to. Were the GIL held while
    the store waits for the lock, that thread could never run: the store
    would wait out its busy timeout and fail. (The lock is held from
    another process because SQLite's locks are per process: Python's own
    sqlite3 module in this process would not exclude the store.)"""
    path = tmp_path / "metrics.db"
    with MetricsStorage(path) as store:
        store.store_task_metric("first", "a", 1, "success")
        holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            events = []

            def release_later():
                time.sleep(0.3)  # the store is waiting on the lock by now
                events.append("released")
                holder.stdin.write("go\n")
                holder.stdin.flush()

            releaser = threading.Thread(target=release_later)
            releaser.start()
            store.store_task_metric("second", "a", 1, "success")
            events.append("stored")
            releaser.join()
            assert holder.stdout.readline().strip() == "released"
        finally:
            holder.kill()
            holder.wait()
        assert events == ["released", "stored"]
        assert {r["task_id"] for r in store.get_task_metrics()} == {"first", "second"}


def test_closing_while_other_threads_read_is_safe(tmp_path):
    store = MetricsStorage(tmp_path / "metrics.db")
    store.store_task_metrics(
        [(f"t{i}", "a", i, "success", 0, 0, utc_now() - timedelta(seconds=i)) for i in range(2000)])
    outcomes = []

    def read():
        try:
            for _ in range(50):
                store.summary()
            outcomes.append("finished")
        except Exception as e:  # noqa: BLE001
            outcomes.append(type(e).__name__)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    time.sleep(0.05)
    store.close()
    for r in readers:
        r.join()
    # Each reader either finished or was told the store is closed.
    assert set(outcomes) <= {"finished", "Closed"} and len(outcomes) == 4
    assert MetricsStorage(tmp_path / "metrics.db").success_rate()["total"] == 2000
