"""Fixtures: a throwaway store on each engine the package was built with.

Tests taking ``store`` run on a file, and also on PostgreSQL when
``SWARM_METRICS_PG_URL`` names a server (the project's test script starts
one); each PostgreSQL store gets a database of its own, dropped after.
"""

import os
import subprocess
import uuid

import pytest

import swarm_metrics

PG_URL = os.environ.get("SWARM_METRICS_PG_URL")

ENGINES = ["file"] + (["postgres"] if PG_URL else [])


def _psql(url, sql):
    subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def pg_database():
    """A new, empty PostgreSQL database; yields its URL."""
    assert PG_URL, "SWARM_METRICS_PG_URL is not set"
    name = "swarm_py_" + uuid.uuid4().hex[:12]
    _psql(PG_URL, f"CREATE DATABASE {name}")
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _psql(PG_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=ENGINES)
def location(request, tmp_path):
    """Where a store lives: a file under tmp_path, or a PostgreSQL URL."""
    if request.param == "file":
        return str(tmp_path / "metrics.db")
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(location):
    with swarm_metrics.MetricsStorage(location) as s:
        yield s


@pytest.fixture
def file_store(tmp_path):
    with swarm_metrics.MetricsStorage(tmp_path / "metrics.db") as s:
        yield s
