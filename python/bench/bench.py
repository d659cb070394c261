"""The same workloads through the reference module (rebuilt from its
documentation in reference_storage.py) and through swarm_metrics, in one
run, printing rates and the ratios between them.

    python python/bench/bench.py [--rows 200000] [--out FILE.json]

Workloads:
- single stores from one Python thread, each durable when it returns (the
  reference commits each; swarm_metrics at its default durability, which
  survives the process being killed, and at "full", which survives power
  loss too);
- single stores from 8 Python threads against one;
- batched stores (store_task_metrics, 10,000 rows a call);
- one agent's last hour (get_task_metrics with agent_id and time_range) on
  a store of --rows tasks over 30 days and 20 agents.
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from reference_storage import ReferenceMetricsStorage  # noqa: E402

from swarm_metrics import MetricsStorage  # noqa: E402

AGENTS = [f"agent-{i:02d}" for i in range(20)]
RESULTS = ["success", "success", "success", "failure", "timeout"]


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def single_stores(store, n, prefix, threads=1):
    """Stores n tasks one call each from `threads` threads; returns stores/s."""
    per = n // threads

    def work(t):
        for i in range(per):
            store.store_task_metric(f"{prefix}-{t}-{i}", AGENTS[i % 20], 1000 + i,
                                    RESULTS[i % 5], 100, 1)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - start)


def dataset(rows, now):
    rng = random.Random(1)
    span = timedelta(days=30)
    step = span / rows
    for i in range(rows):
        at = now - span + step * i
        yield (f"task-{i}", rng.choice(AGENTS), rng.randrange(1, 60_000), rng.choice(RESULTS),
               rng.randrange(0, 5000), rng.randrange(0, 20), at)


def last_hour_queries(store, now, n=500):
    """Seconds per get_task_metrics of one agent's last hour, and rows seen."""
    rng = random.Random(2)
    window = (now - timedelta(hours=1), now)
    times, seen = [], 0
    for _ in range(n):
        agent = rng.choice(AGENTS)
        start = time.perf_counter()
        rows = store.get_task_metrics(agent_id=agent, time_range=window)
        times.append(time.perf_counter() - start)
        seen += len(rows)
    return statistics.median(times), seen / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--reference-stores", type=int, default=1_000)
    parser.add_argument("--stores", type=int, default=20_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    figures = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        tmp = Path(tmp)
        ref = ReferenceMetricsStorage(tmp / "reference.db")
        ours = MetricsStorage(tmp / "ours.db")
        full = MetricsStorage(tmp / "ours-full.db", durability="full")

        figures["reference_single_1t"] = single_stores(ref, args.reference_stores, "r1")
        figures["ours_single_1t"] = single_stores(ours, args.stores, "o1")
        figures["ours_full_single_1t"] = single_stores(full, args.reference_stores * 4, "f1")
        figures["reference_single_8t"] = single_stores(ref, args.reference_stores, "r8", 8)
        figures["ours_single_8t"] = single_stores(ours, args.stores * 2, "o8", 8)
        figures["ours_full_single_8t"] = single_stores(full, args.reference_stores * 8, "f8", 8)

        batch_db = MetricsStorage(tmp / "batch.db")
        now = datetime.now(timezone.utc)
        rows = list(dataset(args.rows, now))
        start = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            batch_db.store_task_metrics(rows[i:i + 10_000])
        figures["ours_batch_tuples_rows_per_s"] = len(rows) / (time.perf_counter() - start)
        dict_rows = [
            {"task_id": "d" + r[0], "agent_id": r[1], "duration_ms": r[2], "result": r[3],
             "tokens_used": r[4], "files_changed": r[5], "timestamp": r[6]}
            for r in rows[:100_000]
        ]
        start = time.perf_counter()
        for i in range(0, len(dict_rows), 10_000):
            batch_db.store_task_metrics(dict_rows[i:i + 10_000])
        figures["ours_batch_dicts_rows_per_s"] = len(dict_rows) / (time.perf_counter() - start)
        batch_db.close()

        query_ref = ReferenceMetricsStorage(tmp / "reference-query.db")
        query_ref.bulk_load(rows)
        query_ours = MetricsStorage(tmp / "ours-query.db")
        for i in range(0, len(rows), 10_000):
            query_ours.store_task_metrics(rows[i:i + 10_000])
        ref_t, ref_rows = last_hour_queries(query_ref, now)
        our_t, our_rows = last_hour_queries(query_ours, now)
        assert abs(ref_rows - our_rows) <= 1, (ref_rows, our_rows)
        figures["rows"] = args.rows
        figures["last_hour_rows"] = our_rows
        figures["reference_agent_1h_ms"] = ref_t * 1000
        figures["ours_agent_1h_ms"] = our_t * 1000
        for s in (ref, query_ref):
            s.close()
        for s in (ours, full, query_ours):
            s.close()

    ratios = {
        "single_1t_vs_reference": figures["ours_single_1t"] / figures["reference_single_1t"],
        "full_single_1t_vs_reference":
            figures["ours_full_single_1t"] / figures["reference_single_1t"],
        "single_8t_vs_1t": figures["ours_single_8t"] / figures["ours_single_1t"],
        "full_single_8t_vs_1t": figures["ours_full_single_8t"] / figures["ours_full_single_1t"],
        "agent_1h_time_vs_reference": figures["ours_agent_1h_ms"] / figures["reference_agent_1h_ms"],
    }
    print(f"machine: {figures['machine']}")
    print(f"{'workload':<44}{'reference':>14}{'swarm_metrics':>16}")
    print(f"{'single stores/s, 1 thread':<44}{figures['reference_single_1t']:>14,.0f}"
          f"{figures['ours_single_1t']:>16,.0f}")
    print(f"{'  durability=full':<44}{'':>14}{figures['ours_full_single_1t']:>16,.0f}")
    print(f"{'single stores/s, 8 threads':<44}{figures['reference_single_8t']:>14,.0f}"
          f"{figures['ours_single_8t']:>16,.0f}")
    print(f"{'  durability=full':<44}{'':>14}{figures['ours_full_single_8t']:>16,.0f}")
    print(f"{'batched rows/s (tuples, 10k a call)':<44}{'-':>14}"
          f"{figures['ours_batch_tuples_rows_per_s']:>16,.0f}")
    print(f"{'batched rows/s (dicts, 10k a call)':<44}{'-':>14}"
          f"{figures['ours_batch_dicts_rows_per_s']:>16,.0f}")
    print(f"{'one agent last hour, ms (median)':<44}{figures['reference_agent_1h_ms']:>14.3f}"
          f"{figures['ours_agent_1h_ms']:>16.3f}")
    print(f"  ({args.rows:,} tasks over 30 days, {figures['last_hour_rows']:.1f} rows a query)")
    print("ratios:")
    for k, v in ratios.items():
        print(f"  {k:<34}{v:>8.2f}x")
    if args.out:
        args.out.write_text(json.dumps({"figures": figures, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
