"""The whole ingestion path against a real HTTP server on 127.0.0.1 and real SQLite."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedhub.pipeline import poll_sources
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from tests.support_feedserver import FeedServer, Route, rss

DATES = ["Tue, 25 Nov 2025 08:00:00 +0800", "2025-11-25 09:30", "2025年11月25日 10:00"]


def items(prefix: str, n: int) -> list[tuple[str, str, str]]:
    return [(f"{prefix}-{i}", f"{prefix} 新闻 {i}", DATES[i % 3]) for i in range(n)]


def make_settings(server: FeedServer, paths: dict[str, str], **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "fetch": {"allowlist": ["127.0.0.1"], "total_timeout": 5, "read_timeout": 3},
            "sources": [
                {"id": sid, "name": f"来源 {sid}", "url": server.url(path)}
                for sid, path in paths.items()
            ],
            **extra,
        }
    )


def poll(settings: Settings, storage: Storage, **kw: Any) -> Any:
    return asyncio.run(poll_sources(settings, storage, ignore_schedule=True, **kw))


def test_polling_twice_stores_each_item_once(server: FeedServer, storage: Storage) -> None:
    server.routes["/a.xml"] = Route(rss("甲", items("a", 20)))
    server.routes["/b.xml"] = Route(
        rss("乙", items("b", 10), encoding="gb2312"), "application/rss+xml; charset=gb2312"
    )
    settings = make_settings(server, {"a": "/a.xml", "b": "/b.xml"})

    first = poll(settings, storage)
    assert (first.ok, first.errors, first.new_items) == (2, 0, 30)
    stored = storage.list_items("b", limit=100)
    assert {s.item.title for s in stored} == {f"b 新闻 {i}" for i in range(10)}
    assert all(s.item.link and "utm_source" not in s.item.link for s in stored)

    second = poll(settings, storage)
    assert (second.not_modified, second.new_items, second.updated_items) == (2, 0, 0)
    assert server.statuses[304] == 2
    assert storage.count_items() == 30

    # the server loses its validators: full bodies again, still nothing new
    server.routes["/a.xml"].headers["Cache-Control"] = "no-cache"
    server.routes["/a.xml"].body += b" "
    third = poll(settings, storage)
    assert third.new_items == 0 and third.updated_items == 0
    assert storage.count_items() == 30


def test_changed_item_is_updated_not_duplicated(server: FeedServer, storage: Storage) -> None:
    entries = items("c", 5)
    server.routes["/c.xml"] = Route(rss("丙", entries))
    settings = make_settings(server, {"c": "/c.xml"})
    poll(settings, storage)
    before = {s.item.entry_id: s for s in storage.list_items("c")}
    entries[2] = (entries[2][0], "更正后的标题", entries[2][2])
    server.routes["/c.xml"] = Route(rss("丙", entries))
    report = poll(settings, storage)
    assert (report.new_items, report.updated_items) == (0, 1)
    after = {s.item.entry_id: s for s in storage.list_items("c")}
    assert len(after) == 5
    changed = after[entries[2][0]]
    assert changed.item.title == "更正后的标题"
    assert changed.first_seen == before[entries[2][0]].first_seen


def test_zone_less_chinese_dates_are_beijing_time(server: FeedServer, storage: Storage) -> None:
    server.routes["/d.xml"] = Route(rss("丁", items("d", 3)))
    poll(make_settings(server, {"d": "/d.xml"}), storage)
    published = {s.item.entry_id: s.item.published for s in storage.list_items("d")}
    assert published["d-0"] == datetime(2025, 11, 25, 0, 0, tzinfo=UTC)
    assert published["d-1"] == datetime(2025, 11, 25, 1, 30, tzinfo=UTC)
    assert published["d-2"] == datetime(2025, 11, 25, 2, 0, tzinfo=UTC)


def test_failing_sources_never_stop_the_others(server: FeedServer, storage: Storage) -> None:
    server.routes["/ok.xml"] = Route(rss("好", items("ok", 4)))
    server.routes["/boom.xml"] = Route(b"oops", "text/plain", status=500)
    server.routes["/html.xml"] = Route(
        b"<!doctype html><html><body><p>\xe4\xb8\xad</p></body></html>", "text/html"
    )
    paths = {"ok": "/ok.xml", "boom": "/boom.xml", "missing": "/nope.xml", "html": "/html.xml"}
    report = poll(make_settings(server, paths), storage)
    by_id = {r.source_id: r for r in report.results}
    assert by_id["ok"].status == "ok" and by_id["ok"].new == 4
    assert by_id["boom"].status == "error" and by_id["boom"].http_status == 500
    assert by_id["missing"].http_status == 404
    assert by_id["html"].status == "error"
    assert report.errors == 3
    for sid in ("boom", "missing", "html"):
        state = storage.get_state(sid)
        assert state is not None and state.error_count == 1
        assert state.last_error and server.url(paths[sid]) in state.last_error
        assert state.next_check_at is not None
    log = storage.fetch_log("boom")
    assert log[0].status == 500 and log[0].error


def test_gone_disables_and_retry_after_is_honoured(server: FeedServer, storage: Storage) -> None:
    server.routes["/gone.xml"] = Route(b"", status=410)
    server.routes["/busy.xml"] = Route(b"", status=429, headers={"Retry-After": "7200"})
    settings = make_settings(server, {"gone": "/gone.xml", "busy": "/busy.xml"})
    before = datetime.now(UTC)
    report = poll(settings, storage)
    assert {r.source_id: r.status for r in report.results} == {"gone": "gone", "busy": "error"}
    gone = storage.get_state("gone")
    assert gone is not None and gone.disabled_reason
    busy = storage.get_state("busy")
    assert busy is not None and busy.next_check_at is not None
    assert busy.next_check_at >= before + timedelta(seconds=7200)
    again = poll(settings, storage)  # --all still skips a disabled source
    assert [r.source_id for r in again.results] == ["busy"]
    assert server.hits["/gone.xml"] == 1


def test_permanent_redirect_is_recorded(server: FeedServer, storage: Storage) -> None:
    server.routes["/new.xml"] = Route(rss("新址", items("n", 2)))
    server.routes["/old.xml"] = Route(b"", status=301, headers={"Location": server.url("/new.xml")})
    report = poll(make_settings(server, {"moved": "/old.xml"}), storage)
    assert report.results[0].redirected_to == server.url("/new.xml")
    state = storage.get_state("moved")
    assert state is not None and state.redirected_to == server.url("/new.xml")
    assert storage.count_items("moved") == 2


def test_only_due_sources_are_polled(server: FeedServer, storage: Storage) -> None:
    server.routes["/e.xml"] = Route(rss("戊", items("e", 2)))
    settings = make_settings(server, {"e": "/e.xml"})
    first = asyncio.run(poll_sources(settings, storage))
    assert first.ok == 1
    second = asyncio.run(poll_sources(settings, storage))
    assert second.results == []
    assert server.hits["/e.xml"] == 1


def test_guard_refuses_loopback_without_allowlist(server: FeedServer, storage: Storage) -> None:
    server.routes["/f.xml"] = Route(rss("己", items("f", 2)))
    settings = make_settings(server, {"f": "/f.xml"}, fetch={})
    report = poll(settings, storage)
    assert report.results[0].status == "error"
    assert server.hits["/f.xml"] == 0


def test_fetch_lines_carry_the_source_id(
    server: FeedServer, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes["/g.xml"] = Route(rss("庚", items("g", 1)))
    with caplog.at_level(logging.INFO, logger="feedhub.poll"):
        poll(make_settings(server, {"g": "/g.xml", "h": "/missing.xml"}), storage)
    records = [r for r in caplog.records if r.name == "feedhub.poll"]
    assert {getattr(r, "source", None) for r in records} == {"g", "h"}


def test_big_polls_parse_in_worker_processes(server: FeedServer, storage: Storage) -> None:
    paths = {}
    for n in range(60):
        server.routes[f"/p{n}.xml"] = Route(rss(f"源{n}", items(f"p{n}", 3)))
        paths[f"p{n}"] = f"/p{n}.xml"
    settings = make_settings(server, paths)
    # Roomy timeouts: the first polls wait while the worker processes start, which takes
    # seconds on a loaded machine.
    fetch = settings.fetch.model_copy(update={"total_timeout": 30.0, "read_timeout": 15.0})
    settings = settings.model_copy(update={"fetch": fetch})
    assert settings.fetch.parse_processes == 2

    async def run() -> Any:
        from feedhub.fetch import Fetcher
        from feedhub.pipeline import Poller, source_specs

        storage.sync_sources(source_specs(settings), datetime.now(UTC))
        async with Fetcher(settings.fetch, user_agent="test") as fetcher:
            poller = Poller(settings, storage, fetcher)
            try:
                report = await poller.poll(ignore_schedule=True)
                assert poller._parse_processes is not None  # the pool did the parsing
                return report
            finally:
                poller.close()

    report = asyncio.run(run())
    assert (report.ok, report.new_items) == (60, 180)
    assert {s.item.title for s in storage.list_items("p7")} == {f"p7 新闻 {i}" for i in range(3)}
    # The workers made the search terms too: the indexer has nothing left to do.
    assert storage.items_to_index() == []
