"""Serving benchmark: feedhub's /feeds/all.xml against nginx serving the same bytes as a file.

Feed readers poll the merged feed all day, most of them with a validator, so what matters is how
many requests a single feedhub process answers next to a static file server, for a full 200 and
for a 304. nginx (Debian's package) is the yardstick: it serves the exact bytes feedhub produced
(and feedhub's own gzip bytes as a ``gzip_static`` twin), from one worker by default, as feedhub
runs one process. Both are driven by the same ``wrk`` settings on 127.0.0.1, interleaved run by
run (the order alternates each repeat) so drift on a shared machine hits both alike.

Correctness is checked, not assumed: each warm-up runs with a Lua ``response`` hook that counts
statuses and checks every 200 body's length (the hook slows wrk down, so the measured run has
none); the measured run must have no socket or status errors and must have read as many bytes
per request as one response is long. Server CPU time per request (from /proc) is reported beside
requests/s: on a busy machine it moves less than throughput does.

    .venv/bin/python bench/serve.py                         # 200, 200-gzip, 304; 2 repeats
    .venv/bin/python bench/serve.py --duration 5 --repeat 3 --paths 200,304
    .venv/bin/python bench/serve.py --profile /tmp/prof     # then: where feedhub's time goes
    .venv/bin/python bench/serve.py --contender patched=/tmp/copy/src   # a patched tree beside

Exit status: 0 ok, 1 a check failed or setup failed, 2 under target with --check-target.
"""

from __future__ import annotations

import argparse
import ctypes
import gzip
import io
import json
import math
import os
import pstats
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import farm

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
HOST = "127.0.0.1"
FEED = "/feeds/all.xml"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Bytes read per request must match one response's length this closely (runs end mid-response).
SIZE_TOLERANCE = 0.03


@dataclass(frozen=True)
class PathSpec:
    """One request shape: the encoding asked for and whether it carries the server's ETag."""

    name: str
    gzip: bool
    conditional: bool
    target: float | None  # feedhub/nginx requests/s wanted; None: an extra row
    reference: float | None  # a bare Starlette app under uvicorn, measured earlier

    @property
    def status(self) -> int:
        return 304 if self.conditional else 200


PATHS = {
    p.name: p
    for p in (
        PathSpec("200", gzip=False, conditional=False, target=0.6, reference=0.46),
        PathSpec("200-gzip", gzip=True, conditional=False, target=None, reference=None),
        PathSpec("304", gzip=False, conditional=True, target=0.4, reference=0.32),
        PathSpec("304-gzip", gzip=True, conditional=True, target=None, reference=None),
    )
}


class BenchError(RuntimeError):
    """Setup or a check failed; the message says what."""


def log(message: str) -> None:
    print(f"[serve {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Requests/s and latency of feedhub's /feeds/all.xml next to nginx.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of checked warm-up")
    p.add_argument("--connections", type=int, default=16, help="wrk -c")
    p.add_argument("--threads", type=int, default=1, help="wrk -t")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="nginx worker_processes (feedhub run is always one process)",
    )
    p.add_argument("--repeat", type=int, default=2, help="measured runs per server and path")
    p.add_argument(
        "--paths",
        default="200,200-gzip,304",
        help=f"comma-separated, from {', '.join(PATHS)}",
    )
    p.add_argument("--items", type=int, default=50, help="entries in /feeds/all.xml")
    p.add_argument(
        "--pin",
        action="store_true",
        help="servers on CPU 0, wrk on the other CPUs (less noise from the scheduler)",
    )
    p.add_argument(
        "--contender",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also run feedhub imported from SRC (a patched copy of src/), as NAME",
    )
    p.add_argument("--src", type=Path, default=SRC, help="where the 'feedhub' contender comes from")
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="afterwards, run feedhub under cProfile for each path and print where time goes",
    )
    p.add_argument(
        "--profile-clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="profile the event loop thread's CPU time, or wall time (counts preemption)",
    )
    p.add_argument("--max-seconds", type=float, default=900.0, help="bound on the whole run")
    p.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--check-target", action="store_true", help="exit 2 when under target")
    args = p.parse_args(argv)
    args.path_list = [s.strip() for s in args.paths.split(",") if s.strip()]
    unknown = [s for s in args.path_list if s not in PATHS]
    if unknown or not args.path_list:
        p.error(f"--paths: unknown {unknown}; choose from {', '.join(PATHS)}")
    if args.duration < 1 or args.warmup < 1 or args.repeat < 1 or args.items < 1:
        p.error("--duration and --warmup must be at least 1 s; --repeat and --items at least 1")
    if args.threads < 1 or args.connections < args.threads or args.workers < 1:
        p.error("need 1 <= --threads <= --connections and --workers >= 1")
    contenders = {"feedhub": args.src.resolve()}
    for entry in args.contender:
        name, eq, src = entry.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in contenders:
            p.error(f"--contender {entry!r}: use a new NAME=SRC_DIR")
        if not (Path(src) / "feedhub" / "__init__.py").is_file():
            p.error(f"--contender {entry!r}: {src} has no feedhub package")
        contenders[name] = Path(src).resolve()
    if "nginx" in contenders:
        p.error("the name nginx is taken")
    args.contenders = contenders
    return args


# --- processes --------------------------------------------------------------------------------


def child_setup(cpus: set[int] | None) -> Callable[[], None]:
    """Runs in each child before exec: die with this process (no server outlives a killed
    benchmark: PR_SET_PDEATHSIG), and keep to the given CPUs when pinning."""

    def setup() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
        except OSError:
            pass
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def clean_env(src: Path | None = None) -> dict[str, str]:
    """No proxy variable may route loopback traffic elsewhere."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def proc_family(pid: int) -> list[int]:
    """``pid`` and its direct children (nginx's workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    size: int  # status line + headers + body, as read off the socket


def raw_get(port: int, path: str, headers: dict[str, str]) -> Reply:
    """A GET on a bare socket: exact sizes, and no proxy setting can get involved."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise BenchError(f"{path}: connection closed before the headers")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parsed = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        length = int(parsed.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise BenchError(f"{path}: connection closed in the body")
            body += chunk
    return Reply(int(status_line.split()[1]), parsed, body[:length], len(head) + 4 + length)


class Server:
    """A server child process on 127.0.0.1:port, stopped whatever happens."""

    name = ""
    stop_signal = signal.SIGTERM

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def pids(self) -> list[int]:
        return proc_family(self.proc.pid) if self.proc else []

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited at start-up{self.log_tail()}")
            try:
                raw_get(self.port, FEED, {"Accept-Encoding": "identity"})
                return
            except (OSError, BenchError):
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name} did not answer{self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return "\n" + self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class Feedhub(Server):
    def __init__(
        self,
        name: str,
        src: Path,
        config: Path,
        port: int,
        workdir: Path,
        cpus: set[int] | None,
        profile_to: Path | None = None,
        profile_clock: str = "cpu",
    ) -> None:
        super().__init__(port)
        self.name = name
        self.log_path = workdir / f"{name}-{port}.log"
        python = [sys.executable, "-m", "feedhub"]
        if profile_to is not None:
            python = [sys.executable, str(Path(__file__).resolve()), "--profile-child"]
            python += [str(profile_to), profile_clock]
        cmd = [*python, "--config", str(config), "--log-level", "warning"]
        cmd += ["--log-format", "text", "run", "--role", "web", "--host", HOST]
        cmd += ["--port", str(port)]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                env=clean_env(src),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_setup(cpus),
            )


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ }}
    default_type "application/rss+xml; charset=utf-8";
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server_tokens off;
    etag on;
    gzip off;
    gzip_static on;
    gzip_vary on;
    add_header Cache-Control "public, max-age=60";
    server {{
        listen {host}:{port}{reuseport};
        server_name _;
        root {root};
    }}
}}
"""


class Nginx(Server):
    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful: finish responses, then exit

    def __init__(self, root: Path, port: int, workers: int, tmp: Path, cpus: set[int] | None):
        super().__init__(port)
        binary = farm.find_nginx()
        tmp.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / "error.log"
        for path in (tmp, root):  # workers drop to an unprivileged user when started as root
            path.chmod(path.stat().st_mode | 0o755)
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                workers=workers,
                tmp=tmp,
                host=HOST,
                port=port,
                reuseport=" reuseport" if workers > 1 else "",
                root=root,
            )
        )
        self.proc = subprocess.Popen(
            [binary, "-p", str(tmp), "-c", str(conf), "-e", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=child_setup(cpus),
        )


# --- the feed ---------------------------------------------------------------------------------


def build_database(workdir: Path, items: int, port: int) -> Path:
    """Poll a small farm of generated Chinese news feeds once into a fresh SQLite database and
    return the config that serves it (web.feed_limit = items, base_url on ``port``)."""
    per_feed = 20
    # Merged feeds list stories, and near-duplicate items share one: leave a margin.
    spec = farm.FarmSpec(feeds=math.ceil(items / per_feed) + 2, items=per_feed)
    root = workdir / "sources"
    names = farm.write_farm(root, spec)
    config = workdir / "feedhub.yaml"
    with farm.NginxFarm(root, names, hosts=1, workers=1, gzip_static=False) as sources:
        doc = {
            "site": {
                "title": "各地新闻汇",
                "description": "服务基准测试",
                "base_url": f"http://{HOST}:{port}/",
                "language": "zh-CN",
            },
            "storage": {"url": f"sqlite:///{workdir / 'feedhub.db'}"},
            "fetch": {"allowlist": [HOST], "per_host": 4},
            "web": {"host": HOST, "port": port, "feed_limit": items},
            "sections": [{"id": "yaowen", "title": "要闻"}],
            "sources": [
                {
                    "id": f"farm-{i}",
                    "name": f"地方新闻 {i}",
                    "url": farm.check_loopback(url),
                    "section": "yaowen",
                }
                for i, url in enumerate(sources.urls())
            ],
        }
        config.write_text(json.dumps(doc, ensure_ascii=False, indent=2))  # JSON is YAML
        cmd = [sys.executable, "-m", "feedhub", "--config", str(config), "--log-format", "text"]
        cmd += ["poll", "--all", "--no-progress"]
        done = subprocess.run(
            cmd, env=clean_env(SRC), cwd=workdir, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise BenchError(f"feedhub poll failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return config


def fetch_documents(server: Server, items: int) -> tuple[Reply, Reply]:
    plain = raw_get(server.port, FEED, {"Accept-Encoding": "identity"})
    zipped = raw_get(server.port, FEED, {"Accept-Encoding": "gzip"})
    if plain.status != 200 or zipped.status != 200:
        raise BenchError(f"{server.name}: {FEED} answered {plain.status} / {zipped.status}")
    found = plain.body.count(b"<item>")
    if found != items:
        raise BenchError(f"{server.name}: {FEED} has {found} items, not {items}")
    if zipped.headers.get("content-encoding") != "gzip":
        raise BenchError(f"{server.name}: no gzip variant")
    if gzip.decompress(zipped.body) != plain.body:
        raise BenchError(f"{server.name}: the gzip variant is not the same document")
    return plain, zipped


def check_server(server: Server, plain: bytes, zipped: bytes) -> dict[str, dict[str, str]]:
    """Same bytes both ways, a strong ETag each, 304 to each; returns the request headers of
    every path for this server."""
    mine = fetch_documents(server, plain.count(b"<item>"))
    if mine[0].body != plain or mine[1].body != zipped:
        raise BenchError(f"{server.name} does not serve the same bytes")
    headers: dict[str, dict[str, str]] = {}
    for spec in PATHS.values():
        reply = mine[1] if spec.gzip else mine[0]
        etag = reply.headers.get("etag", "")
        if not etag or etag.startswith("W/"):
            raise BenchError(f"{server.name}: no strong ETag for {spec.name}: {etag!r}")
        h = {"Accept-Encoding": "gzip" if spec.gzip else "identity"}
        if spec.conditional:
            h["If-None-Match"] = etag
        status = raw_get(server.port, FEED, h).status
        if status != spec.status:
            raise BenchError(f"{server.name}: {spec.name} answered {status}")
        headers[spec.name] = h
    return headers


# --- load -------------------------------------------------------------------------------------

LUA = """\
wrk.method = "GET"
{headers}
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
{hook}
function done(summary, latency, requests)
  local counts, bad = {{}}, 0
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s ~= nil then
      for k, v in pairs(s) do counts[k] = (counts[k] or 0) + v end
    end
    bad = bad + (t:get("bad_length") or 0)
  end
  local parts = {{}}
  for k, v in pairs(counts) do parts[#parts + 1] = string.format('"%.0f": %.0f', k, v) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, "connect": %.0f, ' ..
    '"read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f, "p50": %.0f, ' ..
    '"p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.3f, "statuses": {{%s}}, ' ..
    '"bad_length": %.0f}}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ", "), bad))
end
"""
HOOK = """\
statuses = {{}}
bad_length = 0
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 and #body ~= {length} then bad_length = bad_length + 1 end
end
"""


def write_script(path: Path, headers: dict[str, str], body_length: int | None) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items())
    hook = HOOK.format(length=body_length) if body_length is not None else ""
    path.write_text(LUA.format(headers=lines, hook=hook))
    return path


def run_wrk(
    wrk: str, args: argparse.Namespace, port: int, script: Path, seconds: float
) -> dict[str, Any]:
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s"]
    cmd += ["--timeout", "5s", "-s", str(script), f"http://{HOST}:{port}{FEED}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        cmd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=child_setup(args.wrk_cpus),
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr}")
    result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    wrk_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["wrk_cores"] = wrk_cpu / (result["duration_us"] / 1e6)
    return result


def measure(
    wrk: str,
    args: argparse.Namespace,
    server: Server,
    spec: PathSpec,
    headers: dict[str, str],
    expect: Reply,
    workdir: Path,
) -> dict[str, Any]:
    """A checked warm-up, then the measured run; problems are listed in the row."""
    problems: list[str] = []
    stem = workdir / f"{server.name}-{spec.name}"
    checked = write_script(stem.with_suffix(".check.lua"), headers, len(expect.body))
    warm = run_wrk(wrk, args, server.port, checked, args.warmup)
    statuses = {int(k): v for k, v in warm["statuses"].items()}
    if set(statuses) != {spec.status}:
        problems.append(f"warm-up statuses {statuses}, wanted only {spec.status}")
    if warm["bad_length"]:
        problems.append(f"{warm['bad_length']} bodies of the wrong length in the warm-up")
    fast = write_script(stem.with_suffix(".lua"), headers, None)
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    run = run_wrk(wrk, args, server.port, fast, args.duration)
    cpu = cpu_seconds(pids) - cpu_before
    seconds = run["duration_us"] / 1e6
    requests = run["requests"]
    errors = {k: run[k] for k in ("connect", "read", "write", "status", "timeout") if run[k]}
    if errors:
        problems.append(f"wrk errors {errors}")
    per_request = run["bytes"] / requests if requests else 0.0
    if not requests or abs(per_request - expect.size) > SIZE_TOLERANCE * expect.size:
        problems.append(f"{per_request:.0f} bytes per response read, one is {expect.size}")
    return {
        "server": server.name,
        "path": spec.name,
        "rps": requests / seconds,
        "p50_ms": run["p50"] / 1000,
        "p90_ms": run["p90"] / 1000,
        "p99_ms": run["p99"] / 1000,
        "max_ms": run["max"] / 1000,
        "requests": requests,
        "bytes_per_response": round(per_request, 1),
        "response_size": expect.size,
        "server_cpu_us": 1e6 * cpu / requests if requests else None,
        "server_cores": cpu / seconds,
        "wrk_cores": run["wrk_cores"],
        "warmup_statuses": statuses,
        "problems": problems,
    }


# --- summary ----------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], paths: list[str], servers: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        for name in servers:
            mine = [r for r in runs if r["path"] == path and r["server"] == name]
            if not mine:
                continue
            rps = [r["rps"] for r in mine]
            cpu = [r["server_cpu_us"] for r in mine if r["server_cpu_us"] is not None]
            rows.append(
                {
                    "path": path,
                    "server": name,
                    "runs": len(mine),
                    "rps": statistics.median(rps),
                    "rps_min": min(rps),
                    "rps_max": max(rps),
                    "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                    "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                    "server_cpu_us": statistics.median(cpu) if cpu else None,
                    "server_cores": statistics.median(r["server_cores"] for r in mine),
                    "wrk_cores": statistics.median(r["wrk_cores"] for r in mine),
                    "response_size": mine[0]["response_size"],
                }
            )
    return rows


def ratios(runs: list[dict[str, Any]], rows: list[dict], paths: list[str]) -> list[dict]:
    """Per contender and path: the ratio of median requests/s to nginx's, the range of ratios
    of runs made back to back (same repeat), and nginx's CPU per request over the contender's."""
    out = []
    by = {(r["path"], r["server"]): r for r in rows}
    for path in paths:
        base = by.get((path, "nginx"))
        for (p, name), row in by.items():
            if p != path or name == "nginx" or base is None:
                continue
            pairs = [
                a["rps"] / b["rps"]
                for a in runs
                for b in runs
                if a["path"] == b["path"] == path
                and a["server"] == name
                and b["server"] == "nginx"
                and a["repeat"] == b["repeat"]
            ]
            spec = PATHS[path]
            ratio = row["rps"] / base["rps"]
            cpu = None
            if row["server_cpu_us"] and base["server_cpu_us"]:
                cpu = base["server_cpu_us"] / row["server_cpu_us"]
            out.append(
                {
                    "path": path,
                    "contender": name,
                    "ratio": ratio,
                    "pair_min": min(pairs) if pairs else None,
                    "pair_max": max(pairs) if pairs else None,
                    "cpu_ratio": cpu,
                    "target": spec.target,
                    "reference": spec.reference,
                    "meets": None if spec.target is None else ratio >= spec.target,
                }
            )
    return out


def render(rows: list[dict], ratio_rows: list[dict], setup: str) -> str:
    lines = [setup, ""]
    w = max([len("server"), *(len(r["server"]) for r in rows)]) + 2
    head = (
        f"{'path':<9}{'server':<{w}}{'req/s':>9} {'(min-max)':<17}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU us/req':>11}{'srv cores':>10}{'wrk cores':>10}{'resp bytes':>11}"
    )
    lines += [head, "-" * len(head)]
    for r in rows:
        spread = f"({r['rps_min']:,.0f}-{r['rps_max']:,.0f})"
        cpu = f"{r['server_cpu_us']:.1f}" if r["server_cpu_us"] is not None else "-"
        lines.append(
            f"{r['path']:<9}{r['server']:<{w}}{r['rps']:>9,.0f} {spread:<17}{r['p50_ms']:>8.2f}"
            f"{r['p99_ms']:>8.2f}{cpu:>11}{r['server_cores']:>10.2f}{r['wrk_cores']:>10.2f}"
            f"{r['response_size']:>11,}"
        )
    if ratio_rows:
        lines += ["", "contender/nginx, requests/s (range over back-to-back pairs); CPU/request"]
    for q in ratio_rows:
        pair = f" ({q['pair_min']:.2f}-{q['pair_max']:.2f})" if q["pair_min"] is not None else ""
        cpu = f"; nginx/contender CPU per request {q['cpu_ratio']:.2f}" if q["cpu_ratio"] else ""
        verdict = ""
        if q["target"] is not None:
            verdict = f"; target {q['target']}x: {'MET' if q['meets'] else 'NOT MET'}"
            verdict += f" (bare Starlette/uvicorn: {q['reference']}x)"
        lines.append(f"  {q['path']:<9}{q['contender']:<{w}}{q['ratio']:.2f}x{pair}{cpu}{verdict}")
    return "\n".join(lines)


# --- profile ----------------------------------------------------------------------------------

AREAS = (
    ("feedhub protocol", "/feedhub/service.py"),  # the server's own answers to cached feeds
    ("feedhub app", "/feedhub/"),
    ("uvicorn", "/uvicorn/"),
    ("prometheus_client", "/prometheus_client/"),
    ("asyncio (Python)", "/asyncio/"),
)


def profile_report(path: Path, wall: float, rps: float, requests: int) -> str:
    """Top functions by own time, and own time summed per area: C calls (socket writes, the
    event loop, httptools) appear as ``{built-in ...}`` entries under 'C functions'."""
    stats = pstats.Stats(str(path))
    areas: dict[str, float] = {}
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        total += tottime
        area = "C functions" if filename == "~" else "other Python"
        for label, needle in AREAS:
            if needle in filename:
                area = label
                break
        areas[area] = areas.get(area, 0.0) + tottime
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(25)
    lines = [
        f"profiled {wall:.1f} s at {rps:,.0f} req/s, {total:.2f} s in the event loop thread, "
        f"{1e6 * total / max(requests, 1):.0f} us per request (profiling slows Python down)"
    ]
    lines += [
        f"  {a:<20}{t:>8.2f} s {100 * t / total:>5.1f} % {1e6 * t / max(requests, 1):>6.1f} us/req"
        for a, t in sorted(areas.items(), key=lambda kv: -kv[1])
    ]
    body = out.getvalue()
    start = body.find("   ncalls")
    lines.append(body[start:] if start >= 0 else body)
    return "\n".join(lines)


def run_profiles(
    wrk: str,
    args: argparse.Namespace,
    config: Path,
    headers: dict[str, dict[str, str]],
    workdir: Path,
    deadline: float,
    cpus: set[int] | None,
) -> list[str]:
    """One fresh feedhub per path; the profiler is switched on after the warm-up (SIGUSR1) and
    off before the server stops (SIGUSR2), so start-up and imports stay out of the figures."""
    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in args.path_list:
        if time.monotonic() + args.duration + args.warmup + 30 > deadline:
            reports.append(f"profile of {name}: skipped, time limit")
            continue
        target = out_dir.resolve() / f"serve-feedhub-{name}.prof"
        target.unlink(missing_ok=True)
        port = farm.free_port([HOST])
        server = Feedhub(
            "feedhub",
            args.src,
            config,
            port,
            workdir,
            cpus,
            profile_to=target,
            profile_clock=args.profile_clock,
        )
        try:
            server.wait_ready()
            assert server.proc is not None
            script = write_script(workdir / f"profile-{name}.lua", headers[name], None)
            run_wrk(wrk, args, port, script, args.warmup)
            server.proc.send_signal(signal.SIGUSR1)
            started = time.monotonic()
            run = run_wrk(wrk, args, port, script, args.duration)
            server.proc.send_signal(signal.SIGUSR2)
            wall = time.monotonic() - started
            for _ in range(100):
                if target.exists():
                    break
                time.sleep(0.1)
            else:
                raise BenchError(f"no profile written{server.log_tail()}")
            time.sleep(0.5)  # dump_stats writes in one go; let it finish
        finally:
            server.stop()
        rps = run["requests"] / (run["duration_us"] / 1e6)
        reports.append(f"== feedhub under cProfile ({args.profile_clock} clock), path {name}: ")
        reports[-1] += f"{target}\n" + profile_report(target, wall, rps, run["requests"])
    return reports


def profile_child(argv: list[str]) -> int:
    """``serve.py --profile-child OUT CLOCK <feedhub arguments>``: feedhub's own command line in
    this process, profiled between SIGUSR1 and SIGUSR2 (the CPU clock leaves out time spent
    preempted, which on a shared machine is most of the wall time)."""
    import cProfile

    out, clock, rest = Path(argv[0]), argv[1], argv[2:]
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    profiler = cProfile.Profile(timer)

    def start(signum: int, frame: object) -> None:
        profiler.enable()

    def stop(signum: int, frame: object) -> None:
        profiler.disable()
        tmp = out.with_suffix(".part")
        profiler.dump_stats(str(tmp))
        tmp.rename(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from feedhub.cli import main as feedhub_main

    return feedhub_main(rest)


# --- main -------------------------------------------------------------------------------------


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError("wrk is missing: apt-get install -y wrk")
    log("wrk not found: installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return shutil.which("wrk") or "wrk"


def versions(wrk: str) -> str:
    """What the figures depend on: the servers, the load generator, the loop and parser."""
    from importlib.metadata import PackageNotFoundError, version

    found = [f"Python {sys.version.split()[0]}"]
    for package in ("uvicorn", "uvloop", "httptools"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"no {package}")
    for cmd in ([farm.find_nginx(), "-v"], [wrk, "-v"]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            first = (done.stderr or done.stdout).strip().splitlines()[0]
            found.append(first.replace("nginx version: ", "").split(" [")[0])
        except (OSError, IndexError, subprocess.TimeoutExpired):
            found.append(f"{Path(cmd[0]).name} ?")
    return ", ".join(found)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--profile-child"]:
        return profile_child(argv[1:])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so that every server is stopped
    started = time.monotonic()
    deadline = started + args.max_seconds
    load_before = os.getloadavg()[0]
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus: set[int] | None = None
    args.wrk_cpus = None
    if args.pin:
        if len(cpus) < 2:
            log("--pin needs two CPUs; not pinning")
        else:
            server_cpus, args.wrk_cpus = {cpus[0]}, set(cpus[1:])
    workdir = Path(tempfile.mkdtemp(prefix="feedhub-serve-"))
    workdir.chmod(0o755)
    servers: list[Server] = []
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    reports: list[str] = []
    try:
        wrk = find_wrk()
        port = farm.free_port([HOST])
        log(f"building a database with {args.items} items")
        config = build_database(workdir, args.items, port)
        feedhubs: list[Server] = []
        for i, (name, src) in enumerate(args.contenders.items()):
            p = port if i == 0 else farm.free_port([HOST])
            feedhubs.append(Feedhub(name, src, config, p, workdir, server_cpus))
            servers.append(feedhubs[-1])
        for server in feedhubs:
            server.wait_ready()
        plain, zipped = fetch_documents(feedhubs[0], args.items)
        static = workdir / "static" / "feeds"
        static.mkdir(parents=True)
        (static / "all.xml").write_bytes(plain.body)
        (static / "all.xml.gz").write_bytes(zipped.body)
        nginx = Nginx(
            workdir / "static", farm.free_port([HOST]), args.workers, workdir / "nginx", server_cpus
        )
        servers.insert(0, nginx)
        nginx.wait_ready()
        headers = {s.name: check_server(s, plain.body, zipped.body) for s in servers}
        expect = {
            (s.name, spec.name): raw_get(s.port, FEED, headers[s.name][spec.name])
            for s in servers
            for spec in PATHS.values()
        }
        log(
            f"{FEED}: {args.items} items, {len(plain.body):,} bytes ({len(zipped.body):,} gzip); "
            f"servers: {', '.join(f'{s.name} :{s.port}' for s in servers)}"
        )
        per_run = args.warmup + args.duration + 1
        total = per_run * len(servers) * len(args.path_list) * args.repeat
        log(f"about {total:.0f} s of load runs ({args.max_seconds:.0f} s limit)")
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else servers[::-1]
            for path in args.path_list:
                for server in order:
                    if time.monotonic() + per_run + 10 > deadline:
                        problems.append(f"time limit: skipped {server.name} {path} run {rep + 1}")
                        continue
                    try:
                        row = measure(
                            wrk,
                            args,
                            server,
                            PATHS[path],
                            headers[server.name][path],
                            expect[(server.name, path)],
                            workdir,
                        )
                    except (BenchError, subprocess.TimeoutExpired) as exc:
                        problems.append(f"{server.name} {path} run {rep + 1}: {exc}")
                        continue
                    row["repeat"] = rep
                    runs.append(row)
                    problems += [
                        f"{server.name} {path} run {rep + 1}: {x}" for x in row["problems"]
                    ]
                    log(
                        f"run {rep + 1} {path:<8} {server.name:<10} {row['rps']:>9,.0f} req/s  "
                        f"p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                        f"CPU {row['server_cpu_us']:.1f} us/req"
                    )
        for server in feedhubs:  # a server that died mid-run must not pass unnoticed
            if server.proc is not None and server.proc.poll() is not None:
                problems.append(f"{server.name} exited during the run{server.log_tail()}")
        for server in servers:
            server.stop()
        if args.profile:
            reports = run_profiles(
                wrk, args, config, headers["feedhub"], workdir, deadline, server_cpus
            )
    except (BenchError, farm.FarmError, subprocess.TimeoutExpired) as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    names = [s.name for s in servers]
    rows = summarize(runs, args.path_list, names)
    ratio_rows = ratios(runs, rows, args.path_list)
    pinning = "pinned: servers on CPU 0, wrk on the rest" if server_cpus else "unpinned"
    setup = (
        f"{FEED}: {args.items} items, {len(plain.body):,} bytes; wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s (+{args.warmup:g}s checked warm-up), "
        f"{args.repeat} run(s) each, medians; nginx worker_processes {args.workers}, "
        f"feedhub one process; {pinning}"
        f"; load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, "
        f"{len(cpus)} CPUs; {versions(wrk)}"
    )
    table = render(rows, ratio_rows, setup)
    if args.json:
        doc = {"setup": setup, "rows": rows, "ratios": ratio_rows, "runs": runs}
        doc["problems"] = problems
        doc["elapsed"] = round(time.monotonic() - started, 1)
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        print(table, file=sys.stderr)
    else:
        print(table)
    for report in reports:
        print("\n" + report, file=sys.stderr if args.json else sys.stdout)
    for problem in problems:
        log(f"CHECK FAILED: {problem}")
    if problems:
        return 1
    if args.check_target and not all(q["meets"] is not False for q in ratio_rows):
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
