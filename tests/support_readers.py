"""Independent feed readers (sfeed, newsboat) and a live ``feedhub run`` for them to read.

The readers are other people's programs run headless against a real server on 127.0.0.1, so
what they show is what a subscriber would see, not what our own parser thinks we wrote.
Each reader's answer is brought into one shape, ``Reading``, so tests compare like with like.

Both readers are Debian packages (``sfeed``, ``newsboat``; sfeed_update also needs ``curl``).
When one is missing its tests skip, unless ``FEEDHUB_REQUIRE_READERS=1`` makes that a failure
(CI sets it, so a missing install step cannot pass unnoticed).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REQUIRE_ENV = "FEEDHUB_REQUIRE_READERS"
READER_TIMEOUT = 30.0


@dataclass(frozen=True, order=True)
class Reading:
    """One entry as a reader recorded it: ``timestamp`` is UNIX seconds."""

    title: str
    link: str
    timestamp: int
    guid: str


class ReaderError(AssertionError):
    """A reader failed to fetch or parse a feed; the message carries its own words."""


def require_binaries(*names: str) -> None:
    """Skip (or fail under FEEDHUB_REQUIRE_READERS=1) unless every program is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (Debian: apt-get install -y newsboat sfeed curl)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 requires the feed readers")
    pytest.skip(reason)


def reader_env(home: Path) -> dict[str, str]:
    """A small environment: a writable HOME, UTF-8, and no proxy between us and 127.0.0.1."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "no_proxy": "*",
        "NO_PROXY": "*",
    }


# --- sfeed -----------------------------------------------------------------------------------


def sfeed_read(feeds: Mapping[str, str], workdir: Path) -> dict[str, list[Reading]]:
    """Run ``sfeed_update`` once over ``feeds`` (name -> URL); entries per name."""
    lines = ["feeds() {", *(f"\tfeed {_sh(name)} {_sh(url)}" for name, url in feeds.items()), "}"]
    return sfeed_update("\n".join(lines) + "\n", workdir)


def sfeed_subscribe_opml(opml: bytes, workdir: Path) -> dict[str, list[Reading]]:
    """Subscribe the way an sfeed user does (``sfeed_opml_import``), then update; by name."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["sfeed_opml_import"],
        input=opml,
        env=reader_env(workdir / "home"),
        capture_output=True,
        timeout=READER_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise ReaderError(f"sfeed_opml_import exited {done.returncode}: {done.stderr!r}")
    return sfeed_update(done.stdout.decode("utf-8"), workdir)


def sfeed_update(feeds_rc: str, workdir: Path) -> dict[str, list[Reading]]:
    """Run ``sfeed_update`` on an sfeedrc that defines ``feeds()``; entries per feed name.

    sfeed_update exits non-zero when any feed fails to fetch, convert or parse. Its TSV
    fields are: timestamp, title, link, content, content-type, id, author, enclosure, category.
    Each feed's file is named after the feed, with ``/`` made ``_``.
    """
    out = workdir / "feeds"
    out.mkdir(parents=True, exist_ok=True)
    rc = workdir / "sfeedrc"
    rc.write_text(f"sfeedpath={_sh(str(out))}\nmaxjobs=4\n{feeds_rc}", encoding="utf-8")
    done = subprocess.run(
        ["sfeed_update", str(rc)],
        env=reader_env(workdir / "home"),
        capture_output=True,
        text=True,
        timeout=READER_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise ReaderError(f"sfeed_update exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return {
        path.name: [_sfeed_row(row) for row in path.read_text(encoding="utf-8").splitlines()]
        for path in sorted(out.iterdir())
    }


def _sfeed_row(row: str) -> Reading:
    fields = row.split("\t")
    if len(fields) < 6 or not fields[0].isdigit():
        raise ReaderError(f"sfeed wrote an unexpected line: {row!r}")
    return Reading(title=fields[1], link=fields[2], timestamp=int(fields[0]), guid=fields[5])


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# --- newsboat --------------------------------------------------------------------------------


def newsboat_read(feeds: Mapping[str, str], workdir: Path) -> dict[str, list[Reading]]:
    """Run one headless ``newsboat -x reload`` per feed (in parallel); entries per name.

    One cache per feed because newsboat keys its cache by GUID alone: the same entry in the
    all-feed and a section feed would be stored once, under whichever feed came last.
    newsboat exits 0 even when a feed fails, so its log (level 4: errors) is read instead.
    """
    env = reader_env(workdir / "home")
    conf = workdir / "config"
    conf.write_text("download-timeout 15\n", encoding="utf-8")
    running: dict[str, tuple[subprocess.Popen[str], Path, Path]] = {}
    for index, (name, url) in enumerate(feeds.items()):
        base = workdir / f"feed{index}"
        base.mkdir(parents=True, exist_ok=True)
        (base / "urls").write_text(url + "\n", encoding="utf-8")
        cache, log = base / "cache.db", base / "newsboat.log"
        command = ["newsboat", "-u", str(base / "urls"), "-c", str(cache), "-C", str(conf)]
        command += ["-l", "4", "-d", str(log), "-x", "reload"]
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running[name] = (process, cache, log)
    result: dict[str, list[Reading]] = {}
    problems: list[str] = []
    for name, (process, cache, log) in running.items():
        try:
            output, _ = process.communicate(timeout=READER_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            problems.append(f"{name}: newsboat did not finish in {READER_TIMEOUT:.0f} s")
            continue
        logged = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        errors = [line for line in logged.splitlines() if "ERROR" in line]
        if process.returncode != 0 or errors:
            problems.append(f"{name} ({feeds[name]}): exit {process.returncode}\n{output}{logged}")
            continue
        result[name] = _newsboat_items(cache, feeds[name])
    if problems:
        raise ReaderError("newsboat failed:\n" + "\n".join(problems))
    return result


def newsboat_import_opml(opml: bytes, workdir: Path) -> list[str]:
    """The feed URLs ``newsboat -i`` subscribes to from ``opml``, in its urls-file order."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "feedhub.opml").write_bytes(opml)
    urls = workdir / "urls"
    urls.write_text("", encoding="utf-8")
    command = ["newsboat", "-u", str(urls), "-c", str(workdir / "import.db")]
    command += ["-C", str(workdir / "none"), "-i", str(workdir / "feedhub.opml")]
    done = subprocess.run(
        command,
        env=reader_env(workdir / "home"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=READER_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise ReaderError(f"newsboat -i exited {done.returncode}:\n{done.stdout}{done.stderr}")
    # Each line: the URL, then the OPML folders as quoted tags.
    lines = urls.read_text(encoding="utf-8").splitlines()
    return [shlex.split(line)[0] for line in lines if line.strip()]


def _newsboat_items(cache: Path, url: str) -> list[Reading]:
    with sqlite3.connect(cache) as db:
        rows = db.execute(
            "SELECT title, url, pubDate, guid FROM rss_item WHERE feedurl = ? AND deleted = 0",
            (url,),
        ).fetchall()
    return [Reading(str(t), str(link), int(date), str(guid)) for t, link, date, guid in rows]


# --- a live feedhub ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    base_url: str  # with a trailing slash
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def feedhub_web(config: dict[str, Any], workdir: Path, port: int) -> Iterator[LiveServer]:
    """``python -m feedhub --config X run --role web`` on 127.0.0.1:``port``, ready to serve.

    The config is written as JSON, which is YAML too. The process is stopped with SIGTERM
    (the way a service manager stops it) and killed only if it does not exit.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "feedhub.yaml"
    path.write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    log = workdir / "feedhub.log"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.pop("FEEDHUB_STORAGE_URL", None)
    env.pop("FEEDHUB_CONFIG", None)
    command = [sys.executable, "-m", "feedhub", "--config", str(path), "run", "--role", "web"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}/", process, log)
    try:
        _wait_ready(server, deadline=time.monotonic() + 20)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(server: LiveServer, deadline: float) -> None:
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"feedhub exited {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if client.get(server.url("healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"feedhub did not answer /healthz in time:\n{server.log_tail()}")
