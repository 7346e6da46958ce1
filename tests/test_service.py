"""``feedhub run`` on the demo config, and the export/opml commands, in subprocesses."""

from __future__ import annotations

import html
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(tmp_path: Path, port: int) -> Path:
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace(
        "port: 8080", f"port: {port}"
    )
    text = text.replace("sqlite:///data/demo.db", f"sqlite:///{tmp_path}/demo.db")
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def feedhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feedhub", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
def test_run_demo_polls_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = demo_config(tmp_path, port)
    cmd = [sys.executable, "-m", "feedhub", "--config", str(config), "run"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        items: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(items) < 98:
            time.sleep(0.3)
            try:
                status, body = get(f"{base}/feeds/all.json?limit=200")
            except OSError:
                continue
            if status == 200:
                items = json.loads(body)["items"]
        # 109 demo items; six stories were reposted by two or three outlets: 98 entries
        assert len(items) == 98, "the demo sources should all have been polled"
        merged = [i for i in items if len(i["_feedhub"]["sources"]) > 1]
        assert len(merged) == 6
        assert all("同时报道" in i["content_html"] for i in merged)
        status, body = get(f"{base}/healthz")
        assert status == 200 and json.loads(body)["scheduler"] == "ok"
        status, body = get(f"{base}/feeds/section/jingji.xml")
        assert status == 200 and "招商".encode() in body or "财经".encode() in body
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert messages.index("worker stopping") > messages.index("Shutting down")  # HTTP first
    assert messages[-1] == "feedhub stopped"
    assert all(line["level"] != "error" for line in lines), [
        line for line in lines if line["level"] == "error"
    ]
    polled = [line for line in lines if line["msg"] == "polled"]
    assert polled and all("source" in line for line in polled)


def test_export_writes_every_feed_and_the_opml(tmp_path: Path) -> None:
    from tests.support_feedserver import FeedServer, Route, rss

    with FeedServer() as server:
        server.routes["/a.xml"] = Route(rss("甲", [("a1", "甲 新闻", "2025-11-25 08:00")]))
        config = tmp_path / "feedhub.yaml"
        config.write_text(
            f"site: {{title: 测试站, base_url: 'https://cdn.example.cn/news/'}}\n"
            f"storage: {{url: 'sqlite:///{tmp_path}/e.db'}}\n"
            "fetch: {allowlist: [127.0.0.1]}\n"
            "sections: [{id: jingji, title: 经济}]\n"
            f"sources: [{{id: a, name: 甲报, url: '{server.url('/a.xml')}', section: jingji,"
            " region: 临沂}]\n",
            encoding="utf-8",
        )
        assert feedhub("--config", str(config), "poll", "--all").returncode == 0
    out = tmp_path / "site"
    result = feedhub("--config", str(config), "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    for stem in ("feeds/all", "feeds/section/jingji", "feeds/source/a", "feeds/region/临沂"):
        assert {f"{stem}.xml", f"{stem}.atom", f"{stem}.json"} <= names
    assert "opml.xml" in names
    feed = json.loads((out / "feeds" / "all.json").read_text(encoding="utf-8"))
    assert feed["feed_url"] == "https://cdn.example.cn/news/feeds/all.json"
    assert feed["items"][0]["title"] == "甲 新闻"
    assert "https://cdn.example.cn/news/feeds/section/jingji.xml" in (out / "opml.xml").read_text(
        encoding="utf-8"
    )
    # The reader pages, as a static site whose links all resolve to written files.
    assert {"index.html", "section/jingji/index.html", "static/style.css"} <= names
    story_pages = [n for n in names if n.startswith("story/") and n.endswith("/index.html")]
    assert len(story_pages) == 1
    assert "甲 新闻" in (out / story_pages[0]).read_text(encoding="utf-8")
    checked = 0
    for page in out.rglob("*.html"):
        for link in re.findall(r'(?:href|src)="([^"#]+)"', page.read_text(encoding="utf-8")):
            if link.startswith(("http", "data:", "/search")):
                continue
            target = (page.parent / html.unescape(link)).resolve()
            assert target.is_relative_to(out.resolve()), (page, link)
            assert (target / "index.html" if link.endswith("/") else target).is_file(), (page, link)
            checked += 1
    assert checked > 20


def test_opml_export_and_import_keep_comments_and_order(tmp_path: Path) -> None:
    config = tmp_path / "feedhub.yaml"
    original = (
        "# 运营者的注释\n"
        "site: {title: 测试站}\n"
        "sections:\n"
        "  - {id: jingji, title: 经济}\n"
        "sources:\n"
        "  # 第一个源\n"
        "  - id: first\n"
        "    name: 第一\n"
        "    url: https://a.example.cn/rss.xml  # 行尾注释\n"
    )
    config.write_text(original, encoding="utf-8")
    exported = feedhub("--config", str(config), "opml", "export")
    assert exported.returncode == 0 and "https://a.example.cn/rss.xml" in exported.stdout
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><opml version="2.0"><head><title>t</title></head>'
        '<body><outline text="经济">'
        '<outline text="财经日报" type="rss" xmlUrl="https://b.example.cn/feed.xml"/>'
        '<outline text="重复" type="rss" xmlUrl="https://a.example.cn/rss.xml"/>'
        "</outline>"
        '<outline text="科技周刊" type="rss" xmlUrl="https://www.c.example.cn/tech/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    result = feedhub("--config", str(config), "opml", "import", str(opml))
    assert result.returncode == 0, result.stderr
    assert "added 2 source(s)" in result.stdout
    text = config.read_text(encoding="utf-8")
    assert text.startswith(original)  # comments and order kept, new sources appended
    assert "name: 财经日报" in text and "section: jingji" in text
    assert "url: https://www.c.example.cn/tech/rss" in text
    assert feedhub("--config", str(config), "check").returncode == 0
    again = feedhub("--config", str(config), "opml", "import", str(opml))
    assert "nothing to add" in again.stdout
    bad = tmp_path / "bad.opml"
    bad.write_text("<html>not opml", encoding="utf-8")
    failed = feedhub("--config", str(config), "opml", "import", str(bad))
    assert failed.returncode == 1 and failed.stderr.startswith("error:")
    assert config.read_text(encoding="utf-8") == text
