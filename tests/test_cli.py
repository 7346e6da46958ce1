"""The command line end to end, in subprocesses, against a real server and real SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support_feedserver import FeedServer, Route, rss

FEEDS = 12
ITEMS = 15


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        for n in range(FEEDS):
            entries = [
                (f"s{n}-{i}", f"第{n}号源 新闻{i}", "Tue, 25 Nov 2025 08:00:00 +0800")
                for i in range(ITEMS)
            ]
            s.routes[f"/f{n}.xml"] = Route(rss(f"源{n}", entries))
        yield s


def write_config(path: Path, server: FeedServer, *, lease: str = "300s", db: Path) -> None:
    lines = [
        "storage:",
        f"  url: sqlite:///{db}",
        "fetch:",
        "  allowlist: [127.0.0.1]",
        "  concurrency: 4",
        "  per_host: 4",
        "schedule:",
        f"  lease: {lease}",
        "sources:",
    ]
    for n in range(FEEDS):
        lines += [f"  - id: s{n}", f"    name: 源{n}", f"    url: {server.url(f'/f{n}.xml')}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def feedhub(config: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "feedhub", "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_poll_prints_a_summary_and_sources_shows_state(tmp_path: Path, server: FeedServer) -> None:
    config, db = tmp_path / "feedhub.yaml", tmp_path / "data" / "feedhub.db"
    write_config(config, server, db=db)
    server.routes["/f3.xml"] = Route(b"", status=500)
    first = feedhub(config, "poll", "--all")
    assert first.returncode == 0, first.stderr
    assert "11 ok, 0 not modified, 1 failed" in first.stdout
    assert f"{(FEEDS - 1) * ITEMS} new" in first.stdout
    assert "HTTP 500" in first.stdout
    second = feedhub(config, "poll", "--all")
    assert "0 ok, 11 not modified, 1 failed" in second.stdout
    due = feedhub(config, "poll")
    assert "nothing was due" in due.stdout
    one = feedhub(config, "poll", "--source", "s1")
    assert "0 ok, 1 not modified" in one.stdout
    unknown = feedhub(config, "poll", "--source", "nope")
    assert unknown.returncode == 1 and "unknown source id(s): nope" in unknown.stderr
    sources = feedhub(config, "sources")
    assert sources.returncode == 0
    assert "s3" in sources.stdout and "HTTP 500" in sources.stdout
    log = feedhub(config, "log", "--source", "s3")
    assert "500" in log.stdout


def test_storage_failure_is_a_clear_error(tmp_path: Path, server: FeedServer) -> None:
    config = tmp_path / "feedhub.yaml"
    write_config(config, server, db=tmp_path / "x.db")
    env = {**os.environ, "FEEDHUB_STORAGE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    cmd = [sys.executable, "-m", "feedhub", "--config", str(config), "poll"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("error:")
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_killed_mid_poll_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, server: FeedServer
) -> None:
    config, db = tmp_path / "feedhub.yaml", tmp_path / "feedhub.db"
    write_config(config, server, lease="1s", db=db)
    for n in range(FEEDS):
        server.routes[f"/f{n}.xml"].delay = 0.3 * (n % 4)  # polls finish at different times
    cmd = [sys.executable, "-m", "feedhub", "--config", str(config), "poll", "--all"]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    stored = 0
    while time.monotonic() < deadline:
        try:
            stored = count(db, "SELECT count(*) FROM items")
        except sqlite3.Error:
            stored = 0
        if stored > 0:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert 0 < stored < FEEDS * ITEMS, "the kill should land in the middle of the poll"

    for route in server.routes.values():
        route.delay = 0
    time.sleep(1.1)  # the dead poller's leases expire
    again = feedhub(config, "poll", "--all")
    assert again.returncode == 0, again.stderr
    assert count(db, "SELECT count(*) FROM items") == FEEDS * ITEMS
    assert count(db, "SELECT count(DISTINCT source_id || '/' || entry_id) FROM items") == (
        FEEDS * ITEMS
    )
    final = feedhub(config, "poll", "--all")
    assert "0 new" in final.stdout
    assert count(db, "SELECT count(*) FROM items") == FEEDS * ITEMS
