"""The worker role of the service: ticks, live config reload (file change and SIGHUP), graceful
stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import feedhub.scheduler
from feedhub.config import load_settings
from feedhub.models import FetchLogEntry, SourceSpec
from feedhub.scheduler import Worker
from feedhub.service import serve
from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from tests.support_feedserver import FeedServer, Route, rss


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        for name in ("a", "b"):
            entries = [(f"{name}{i}", f"{name} 新闻 {i}", "2025-11-25 08:00") for i in range(3)]
            s.routes[f"/{name}.xml"] = Route(rss(name, entries))
        yield s


def config_text(server: FeedServer, db: Path, names: list[str]) -> str:
    lines = [
        f"storage: {{url: 'sqlite:///{db}'}}",
        "fetch: {allowlist: [127.0.0.1]}",
        "schedule: {tick: 0.2s, min_interval: 1s}",
        "sources:",
    ]
    for name in names:
        lines.append(f"  - {{id: {name}, name: 源{name}, url: '{server.url(f'/{name}.xml')}'}}")
    return "\n".join(lines) + "\n"


async def wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_worker_polls_and_reloads_config(
    tmp_path: Path,
    server: FeedServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, path = tmp_path / "w.db", tmp_path / "feedhub.yaml"
    path.write_text(config_text(server, db, ["a"]), encoding="utf-8")
    storage: Storage = open_storage(f"sqlite:///{db}")
    storage.migrate()
    loaded = load_settings(path)
    stop = asyncio.Event()
    running: list[Worker] = []
    original = Worker.__init__

    def keep(self: Worker, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        running.append(self)

    monkeypatch.setattr(Worker, "__init__", keep)
    task = asyncio.create_task(
        serve(loaded, storage, role="worker", stop=stop, config_check_seconds=0.1)
    )
    try:
        await wait_for(lambda: bool(running))
        worker = running[0]
        await wait_for(lambda: storage.count_items("a") == 3)

        # an edit to the file is picked up without a restart
        path.write_text(config_text(server, db, ["a", "b"]), encoding="utf-8")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        await wait_for(lambda: storage.count_items("b") == 3)

        # an invalid edit is reported and the running config kept
        with caplog.at_level(logging.ERROR, logger="feedhub.config"):
            path.write_text("sources:\n  - id: a\n    nmae: x\n", encoding="utf-8")
            os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
            await wait_for(lambda: any("rejected" in r.getMessage() for r in caplog.records))
        assert [s.id for s in worker.settings.sources] == ["a", "b"]
        rejected = next(r for r in caplog.records if "rejected" in r.getMessage())
        assert any(":3: sources[0] (id=a).nmae: unknown key" in p for p in rejected.problems)  # type: ignore[attr-defined]

        # SIGHUP reloads too
        path.write_text(config_text(server, db, ["b"]), encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: [s.id for s in worker.settings.sources] == ["b"])
        assert storage.count_items("a") == 3  # an unconfigured source keeps its items
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        storage.close()


@pytest.mark.slow
def test_run_stops_cleanly_on_sigterm(tmp_path: Path, server: FeedServer) -> None:
    db, path = tmp_path / "r.db", tmp_path / "feedhub.yaml"
    path.write_text(config_text(server, db, ["a", "b"]), encoding="utf-8")
    cmd = [sys.executable, "-m", "feedhub", "--config", str(path), "run"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while server.hits["/b.xml"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.hits["/b.xml"] > 0
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert '"msg": "worker stopped"' in err


async def test_prune_deletes_old_fetch_log_lines_in_chunks(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, path = tmp_path / "w.db", tmp_path / "feedhub.yaml"
    text = config_text(server, db, ["a"]).replace("'}", "', keep_fetch_log: 2d}", 1)
    path.write_text(text, encoding="utf-8")
    storage: Storage = open_storage(f"sqlite:///{db}")
    storage.migrate()
    worker = Worker(load_settings(path), storage)
    try:
        now = datetime.now(UTC)
        storage.sync_sources([SourceSpec("a", server.url("/a.xml"))], now)
        for days in (5, 4, 3, 1, 0):
            state = storage.get_state("a")
            assert state is not None
            started = now - timedelta(days=days)
            entry = FetchLogEntry("a", started, 0.1, 304, 0, 0, 0, None)
            storage.record_poll(state, [], entry, started)
        monkeypatch.setattr(feedhub.scheduler, "PRUNE_CHUNK", 2)  # two chunks and a remainder
        assert await worker.prune() == 3
        assert [e.started_at for e in storage.fetch_log()] == [now, now - timedelta(days=1)]
        assert storage.fetch_outcomes() == {("a", "not_modified"): 5}  # counts stay
    finally:
        await worker.fetcher.aclose()
        worker.poller.close()
        storage.close()
