"""PostgreSQL for tests: a given server, or a throwaway cluster started for the session.

``postgres_url`` (session) is the URL of a database the tests may create databases from:
- ``FEEDHUB_TEST_POSTGRES_URL`` when set (its role needs CREATEDB);
- else a cluster made with the local server binaries (``/usr/lib/postgresql/*/bin``), in a temp
  directory, on 127.0.0.1 at a port picked now, with fsync off; removed at session end;
- else the tests skip, unless ``FEEDHUB_REQUIRE_POSTGRES=1``, which turns the skip into a failure.

``isolated_postgres_url(server_url)`` gives each test an empty schema of its own, so every test
starts from nothing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

ENV_URL = "FEEDHUB_TEST_POSTGRES_URL"
ENV_REQUIRE = "FEEDHUB_REQUIRE_POSTGRES"
RUN_AS = "postgres"  # initdb refuses to run as root


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{ENV_REQUIRE}=1 but PostgreSQL is unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason} (set {ENV_URL} to use a server)")


def _find_bin_dir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if all(os.access(Path(candidate, name), os.X_OK) for name in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="feedhub-pg-"))
        self.data = self.root / "data"
        self.as_other = os.geteuid() == 0
        if self.as_other:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = 0

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_other:
            command = ["su", RUN_AS, "-s", "/bin/sh", "-c", shlex.join(command)]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def start(self) -> str:
        done = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        last_error = ""
        for _attempt in range(3):  # a port picked now can be taken before the server binds it
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "30",
                "-o", options, "start",
            )  # fmt: skip
            if done.returncode == 0:
                return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            log = self.root / "log"
            last_error = done.stderr + (log.read_text(errors="replace") if log.exists() else "")
        raise RuntimeError(f"pg_ctl start failed:\n{last_error}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _unavailable("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            _unavailable(f"running as root and there is no {RUN_AS!r} user to run initdb")
    cluster = _Cluster(bin_dir)
    try:
        url = cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        pytest.fail(f"could not start a throwaway PostgreSQL from {bin_dir}: {exc}", pytrace=False)
    try:
        yield url
    finally:
        cluster.stop()


def _libpq(url: str) -> str:
    """A URL psycopg itself accepts (no ``+driver`` part)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def isolated_postgres_url(server_url: str) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema, dropped afterwards.

    A schema per test isolates as well as a database per test at a fraction of the cost
    (CREATE DATABASE copies a template: about 0.2 s here), and needs only CREATE on the given
    database rather than CREATEDB.
    """
    name = f"feedhub_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    parsed = make_url(server_url)
    query = dict(parsed.query)
    query["options"] = f"-csearch_path={name}"
    try:
        yield parsed.set(query=query).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
            # A test that leaked a connection holding locks makes this fail, not hang the run.
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
