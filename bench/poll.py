"""Polling benchmark: feedhub against the ``reader`` library on one farm of static feeds.

The question is how fast a whole poll cycle is, end to end, against servers that behave like real
news sites: cycle 1 finds every item new (download, parse, store), cycle 2 gets 304 everywhere
(conditional GET only). nginx serves the farm (bench/farm.py) on 127.0.0.1..8 so per-host limits
apply. Each contender runs in a fresh subprocess with a fresh database, so its peak RSS
(``ru_maxrss``) is its own and comparable. Correctness is checked, not assumed: after cycle 1
every item must be stored; after later cycles nothing is new and nginx's access log shows a 304
for every feed.

    .venv/bin/python bench/poll.py                      # 2,000 feeds x 20 items, both contenders
    .venv/bin/python bench/poll.py --feeds 200 --only feedhub --profile

Exit status: 0 ok, 1 a check failed or a contender crashed, 2 under target with --check-target.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import farm

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
CONTENDERS = ("feedhub", "reader")
TARGET = 1.5
# The figures for reader on this kind of machine (2 cores), for context only.
REFERENCE = {"reader": {1: 93.0, 2: 730.0}}
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy")


def log(message: str) -> None:
    print(f"[poll {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Poll a farm of static feeds with feedhub and reader; compare cycle times.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--items", type=int, default=20, help="items per feed")
    p.add_argument(
        "--desc-bytes",
        type=farm.desc_range,
        default=(farm.FarmSpec.desc_min, farm.FarmSpec.desc_max),
        metavar="MIN-MAX",
        help="item description size in bytes",
    )
    p.add_argument("--hosts", type=int, default=8, help="serve on 127.0.0.1..N")
    p.add_argument("--cycles", type=int, default=2, help="cycle 1 all new, later ones all 304")
    p.add_argument("--only", choices=CONTENDERS, help="run one contender only")
    p.add_argument("--repeat", type=int, default=1, help="runs per contender; the median counts")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop and report after this")
    p.add_argument("--concurrency", type=int, help="feedhub fetch.concurrency (config default)")
    p.add_argument("--per-host", type=int, help="feedhub fetch.per_host (config default)")
    p.add_argument("--reader-workers", type=int, default=1, help="reader update_feeds workers")
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument("--gzip", action="store_true", help="serve pre-compressed .gz (gzip_static)")
    p.add_argument("--farm-dir", type=Path, help="keep the farm here and reuse it next time")
    p.add_argument(
        "--profile",
        nargs="?",
        const=".",
        metavar="DIR",
        help="cProfile each cycle (all threads) into DIR/poll-<contender>-cycle<N>.prof "
        "and print the top 25 functions; timings then include profiling overhead",
    )
    p.add_argument(
        "--profile-cycles",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        metavar="N[,N...]",
        help="profile only these cycles (default: all)",
    )
    p.add_argument(
        "--profile-clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="per-thread CPU time, or wall time (counts waiting, GIL waits too)",
    )
    p.add_argument(
        "--src",
        type=Path,
        default=SRC,
        help="import feedhub from this directory (a patched copy, to try a change)",
    )
    p.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy nginx's logs to DIR")
    p.add_argument("--check-target", action="store_true", help="exit 2 when under target")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.feeds < 1 or args.items < 1 or args.cycles < 1 or args.repeat < 1:
        p.error("--feeds, --items, --cycles and --repeat must be at least 1")
    return args


# --- parent -----------------------------------------------------------------------------------


def child_env(src: Path) -> dict[str, str]:
    """The contenders' environment: no proxy may route farm traffic off this machine."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(src), str(BENCH), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONHASHSEED"] = "0"
    return env


def run_child(name: str, spec: dict[str, Any], workdir: Path, deadline: float) -> dict[str, Any]:
    """Run one contender in a fresh interpreter; return what it reported, even if cut short."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    spec = {**spec, "contender": name, "db_dir": str(run_dir), "deadline": deadline}
    spec["result_path"] = str(run_dir / "result.json")
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
        env=child_env(Path(spec["src"])),
        stdin=subprocess.DEVNULL,
        preexec_fn=farm.die_with_parent,
    )
    try:
        code = proc.wait(timeout=max(deadline - time.time(), 0) + 30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        code = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result_path = Path(spec["result_path"])
    result: dict[str, Any] = (
        json.loads(result_path.read_text()) if result_path.exists() else {"cycles": []}
    )
    result.setdefault("problems", [])
    result["contender"] = name
    result["exit_code"] = code
    if code != 0:
        why = "killed at the time limit" if code is None else f"exited with {code}"
        result["problems"].append(f"{name} subprocess {why}")
    return result


def median_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (contender, cycle): the median-time run's figures, worst peak RSS."""
    rows = []
    for name in CONTENDERS:
        by_cycle: dict[int, list[dict[str, Any]]] = {}
        for run in runs:
            if run["contender"] == name:
                for cycle in run["cycles"]:
                    by_cycle.setdefault(cycle["cycle"], []).append(cycle)
        for _, cycles in sorted(by_cycle.items()):
            ordered = sorted(cycles, key=lambda c: c["seconds"])
            row = dict(ordered[(len(ordered) - 1) // 2])
            row["contender"] = name
            row["runs"] = len(cycles)
            row["peak_rss_mib"] = max(c["peak_rss_mib"] for c in cycles)
            rows.append(row)
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    cycles = sorted({r["cycle"] for r in rows})
    for number in cycles:
        pair = {r["contender"]: r for r in rows if r["cycle"] == number}
        if "feedhub" in pair and "reader" in pair and pair["reader"]["feeds_per_s"] > 0:
            fh, rd = pair["feedhub"], pair["reader"]["feeds_per_s"]
            ratio = fh["feeds_per_s"] / rd
            poll_ratio = fh.get("poll_feeds_per_s", fh["feeds_per_s"]) / rd
            out.append(
                {
                    "cycle": number,
                    "ratio": round(ratio, 2),
                    "meets": ratio >= TARGET,
                    "post_seconds": fh.get("post_seconds", 0.0),
                    "poll_ratio": round(poll_ratio, 2),
                }
            )
    return out


def render(rows: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'contender':<9} {'cycle':<8} {'feeds':>6} {'ok':>6} {'new items':>9} {'feeds/s':>8} "
        f"{'items/s':>8} {'seconds':>8} {'post s':>7} {'cpu s':>11} {'peak RSS MiB':>12} "
        f"{'conns':>5}  http"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        kind = "1 new" if r["cycle"] == 1 else f"{r['cycle']} 304"
        http = " ".join(f"{k}:{v}" for k, v in sorted(r["http"].items()))
        rss = f"{r['peak_rss_mib']:.1f}"
        cpu = f"{r['cpu_seconds']:.1f}"
        if r.get("children_cpu_seconds"):
            cpu += f" +{r['children_cpu_seconds']:.1f}"
        if r.get("children_peak_rss_mib"):
            rss += f" +{r['children_peak_rss_mib']:.0f}"
        lines.append(
            f"{r['contender']:<9} {kind:<8} {r['feeds']:>6} {r['feeds_ok']:>6} "
            f"{r['new_items']:>9} {r['feeds_per_s']:>8.1f} {r['items_per_s']:>8.0f} "
            f"{r['seconds']:>8.2f} {r.get('post_seconds', 0.0):>7.2f} {cpu:>11} "
            f"{rss:>12} "
            f"{r['connections']:>5}  {http}"
        )
    lines.append("")
    ref = REFERENCE["reader"]
    lines.append(
        f"(the issue's figures for reader on a 2-core machine: cycle 1 {ref[1]:.0f} feeds/s, "
        f"cycle 2 {ref[2]:.0f} feeds/s; compare contenders within one run)"
    )
    for q in ratio_rows:
        verdict = "meets" if q["meets"] else "MISSES"
        line = (
            f"feedhub/reader, cycle {q['cycle']}: {q['ratio']:.2f}x feeds/s "
            f"({verdict} the {TARGET}x target)"
        )
        if q["post_seconds"] >= 0.05:
            line += (
                f"; polling alone, without feedhub's {q['post_seconds']:.1f} s of work after "
                f"the last feed (story clustering): {q['poll_ratio']:.2f}x"
            )
        lines.append(line)
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so that the cleanup below runs
    started = time.time()
    deadline = started + args.max_seconds
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    contenders = [args.only] if args.only else list(CONTENDERS)
    workdir = Path(tempfile.mkdtemp(prefix="feedhub-bench-"))
    workdir.chmod(0o755)  # nginx workers may run as nobody
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        spec_farm = farm.FarmSpec(args.feeds, args.items, *args.desc_bytes)
        root = args.farm_dir or workdir / "farm"
        log(f"writing the farm ({args.feeds} feeds x {args.items} items) to {root}")
        t0 = time.perf_counter()
        names = farm.write_farm(root, spec_farm, gzip_copies=args.gzip)
        log(f"farm ready in {time.perf_counter() - t0:.1f} s")
        with farm.NginxFarm(
            root, names, hosts=args.hosts, workers=args.nginx_workers, gzip_static=args.gzip
        ) as server:
            log(f"nginx on {server.addresses[0]}..{server.addresses[-1]} port {server.port}")
            spec: dict[str, Any] = {
                "urls": server.urls(),
                "items_per_feed": args.items,
                "cycles": args.cycles,
                "access_log": str(server.access_log),
                "concurrency": args.concurrency,
                "per_host": args.per_host,
                "reader_workers": args.reader_workers,
                "profile_dir": str(Path(args.profile).resolve()) if args.profile else None,
                "profile_clock": args.profile_clock,
                "profile_cycles": args.profile_cycles,
                "src": str(args.src.resolve()),
            }
            for rep in range(args.repeat):
                for name in contenders:
                    if time.time() >= deadline:
                        problems.append(f"time limit reached before {name} run {rep + 1}")
                        break
                    log(f"== {name}: run {rep + 1}/{args.repeat} ==")
                    result = run_child(name, spec, workdir, deadline)
                    runs.append(result)
                    problems.extend(result["problems"])
            if args.keep_logs:
                server.keep_logs(args.keep_logs)
                log(f"nginx logs copied to {args.keep_logs}")
    except farm.FarmError as exc:
        log(f"cannot set up the farm: {exc}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = median_rows(runs)
    ratio_rows = ratios(rows)
    table = render(rows, ratio_rows)
    failed = bool(problems)
    if args.json:
        doc = {
            "feeds": args.feeds,
            "items": args.items,
            "hosts": args.hosts,
            "cycles": args.cycles,
            "target": TARGET,
            "rows": rows,
            "ratios": ratio_rows,
            "runs": runs,
            "problems": problems,
            "elapsed": round(time.time() - started, 1),
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        print(table, file=sys.stderr)
    else:
        print(table)
    for problem in problems:
        log(f"PROBLEM: {problem}")
    if failed:
        return 1
    if args.check_target and not all(q["meets"] for q in ratio_rows):
        return 2
    return 0


# --- child ------------------------------------------------------------------------------------


class AccessLog:
    """Reads what nginx appended since the last look: the servers' own word on each cycle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def take(self) -> tuple[dict[str, int], set[str]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # leave a half-written line for next time
        self.offset += end
        return farm.summarize_log(data[:end].decode(errors="replace").splitlines())


class Monitor(threading.Thread):
    """Prints progress from the access log every few seconds and enforces the deadline: past it,
    the partial result is written and the process ends (a cycle in a library cannot be cut)."""

    def __init__(self, spec: dict[str, Any], result: dict[str, Any]) -> None:
        super().__init__(daemon=True, name="bench-monitor")
        self.spec = spec
        self.result = result
        self.cycle = 0
        self.cycle_start = 0.0
        self.log: AccessLog | None = None
        self.workers_rss = 0.0

    def begin(self, cycle: int) -> None:
        self.log = AccessLog(Path(self.spec["access_log"]))
        self.cycle, self.cycle_start = cycle, time.perf_counter()
        self.workers_rss = 0.0

    def end(self) -> float:
        """Stop watching the cycle; return the largest descendant's peak RSS seen, in MiB."""
        self.cycle = 0
        self.workers_rss = max(self.workers_rss, descendants_peak_rss_mib())
        return self.workers_rss

    def run(self) -> None:
        name, total = self.spec["contender"], len(self.spec["urls"])
        seen: dict[str, int] = {}
        last_cycle = 0
        while True:
            time.sleep(5.0)
            if self.cycle:  # parse workers may be gone by the end of the cycle: look now
                self.workers_rss = max(self.workers_rss, descendants_peak_rss_mib())
            if time.time() > self.spec["deadline"]:
                self.result["problems"].append(
                    f"{name}: time limit reached during cycle {self.cycle or 'setup'}"
                )
                write_result(self.spec, self.result)
                log(f"{name}: time limit reached, stopping")
                os._exit(3)
            if self.cycle and self.log is not None:
                if self.cycle != last_cycle:
                    seen, last_cycle = {}, self.cycle
                for status, n in self.log.take()[0].items():
                    seen[status] = seen.get(status, 0) + n
                done = sum(seen.values())
                log(
                    f"{name} cycle {self.cycle}: {done}/{total} responses "
                    f"({', '.join(f'{k}: {v}' for k, v in sorted(seen.items()))}) "
                    f"in {time.perf_counter() - self.cycle_start:.0f} s"
                )


class Profiler:
    """cProfile for the main thread and every thread started while it runs (parse and store
    workers), merged into one .prof, because a pipeline's time is spent in several threads."""

    def __init__(self, clock: str) -> None:
        # CPU time by default: in wall time a thread waiting for the GIL looks busy.
        self.timer = time.thread_time if clock == "cpu" else time.perf_counter
        self.main = cProfile.Profile(self.timer)
        self.threads: list[tuple[str, cProfile.Profile]] = []

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        prof = cProfile.Profile(self.timer)
        self.threads.append((threading.current_thread().name, prof))
        prof.enable()

    def start(self) -> None:
        threading.setprofile(self._hook)
        self.main.enable()

    def stop(self, path: Path) -> None:
        self.main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = pstats.Stats(self.main, stream=sys.stderr)
        per_thread = {"MainThread": stats.total_tt}  # type: ignore[attr-defined]
        for name, prof in self.threads:
            one = pstats.Stats(prof)
            group = name.rsplit("_", 1)[0]
            per_thread[group] = per_thread.get(group, 0.0) + one.total_tt  # type: ignore[attr-defined]
            stats.add(one)
        stats.dump_stats(path)
        clock = "CPU" if self.timer is time.thread_time else "wall"
        print(f"\nprofile written to {path}; {clock} seconds per thread:", file=sys.stderr)
        for group, seconds in sorted(per_thread.items(), key=lambda kv: -kv[1]):
            print(f"  {group:<24} {seconds:8.2f}", file=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)


class FeedhubContender:
    def __init__(self, spec: dict[str, Any]) -> None:
        from feedhub.pipeline import poll_sources
        from feedhub.settings import Settings
        from feedhub.storage import open_storage

        fetch: dict[str, Any] = {"allow_private_networks": True}
        if spec["concurrency"]:
            fetch["concurrency"] = spec["concurrency"]
        if spec["per_host"]:
            fetch["per_host"] = spec["per_host"]
        self.settings = Settings.model_validate(
            {
                "storage": {"url": f"sqlite:///{spec['db_dir']}/feedhub.db"},
                "fetch": fetch,
                # Related reading has its own benchmark (bench/related.py); story clustering
                # (deduplication) stays on, as deployed.
                "related": {"limit": 0},
                "sources": [
                    {"id": f"f{i}", "name": f"Feed {i}", "url": url}
                    for i, url in enumerate(spec["urls"])
                ],
            }
        )
        self.poll_sources = poll_sources
        self.storage = open_storage(self.settings.storage.url)
        self.storage.migrate()

    def count_items(self) -> int:
        return int(self.storage.count_items())

    def cycle(self) -> dict[str, Any]:
        # The last per-source result marks the end of polling proper; what poll_sources does
        # after it (clustering new items into stories) is timed apart, since reader has no such
        # step.
        last_result = 0.0

        def seen(_: object) -> None:
            nonlocal last_result
            last_result = time.perf_counter()

        report = asyncio.run(
            self.poll_sources(self.settings, self.storage, ignore_schedule=True, on_result=seen)
        )
        post = time.perf_counter() - last_result if last_result else 0.0
        statuses: dict[str, int] = {}
        for r in report.results:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        return {
            "feeds": len(report.results),
            "feeds_ok": report.ok + report.not_modified,
            "not_modified": report.not_modified,
            "reported_new": report.new_items,
            "statuses": statuses,
            "errors": [f"{r.source_id}: {r.error}" for r in report.results if r.error][:5],
            "post_seconds": round(post, 3),
            "clustered": getattr(report, "clustered", None),
        }

    def close(self) -> None:
        self.storage.close()


class ReaderContender:
    def __init__(self, spec: dict[str, Any]) -> None:
        from reader import make_reader

        self.workers = int(spec["reader_workers"])
        self.reader = make_reader(str(Path(spec["db_dir"]) / "reader.sqlite"))
        for url in spec["urls"]:
            self.reader.add_feed(url)

    def count_items(self) -> int:
        return int(self.reader.get_entry_counts().total)

    def cycle(self) -> dict[str, Any]:
        self.reader.update_feeds(scheduled=False, workers=self.workers)
        counts = self.reader.get_feed_counts()
        broken = [
            f"{feed.url}: {feed.last_exception.type_name}: {feed.last_exception.value_str}"
            for feed in self.reader.get_feeds(broken=True, limit=5)
            if feed.last_exception is not None
        ]
        return {
            "feeds": counts.total,
            "feeds_ok": counts.total - (counts.broken or 0),
            "not_modified": None,
            "reported_new": None,
            "statuses": {},
            "errors": broken,
            "post_seconds": 0.0,
            "clustered": None,
        }

    def close(self) -> None:
        self.reader.close()


def write_result(spec: dict[str, Any], result: dict[str, Any]) -> None:
    path = Path(spec["result_path"])
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")  # the monitor may write too
    tmp.write_text(json.dumps(result, ensure_ascii=False))
    os.replace(tmp, path)


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS in MiB (ru_maxrss is KiB on Linux). RUSAGE_CHILDREN gives the largest waited-for
    child process, so a contender that parses in worker processes cannot hide their memory."""
    return resource.getrusage(who).ru_maxrss / 1024


def descendants_cpu() -> dict[int, float]:
    """CPU seconds of every live descendant process, by pid: parse workers do real work that
    RUSAGE_SELF leaves out. They are forkserver children (grandchildren here), which RUSAGE_CHILDREN
    never sees, and may exit before the cycle is over; the forkserver waits for them, so their
    time is in its cutime/cstime: each process counts as its own time plus its waited-for
    children's."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(n) for n in fields[11:15]) / tick
    me, out = os.getpid(), {}
    for pid in cpu:
        ancestor, hops = parents.get(pid, 0), 0
        while ancestor > 1 and ancestor != me and hops < 16:
            ancestor, hops = parents.get(ancestor, 0), hops + 1
        if ancestor == me:
            out[pid] = cpu[pid]
    return out


def descendants_peak_rss_mib() -> float:
    """The largest peak RSS (VmHWM) of the live descendant processes, in MiB."""
    peak = 0
    for pid in descendants_cpu():
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
                        break
        except (OSError, ValueError):
            continue
    return peak / 1024


def check_cycle(spec: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """What must hold after a cycle; any miss is reported as a failed check."""
    name, n, feeds = spec["contender"], row["cycle"], len(spec["urls"])
    expected_new = feeds * spec["items_per_feed"] if n == 1 else 0
    expected_status = "200" if n == 1 else "304"
    problems = []
    if row["new_items"] != expected_new:
        problems.append(
            f"{name} cycle {n}: {row['new_items']} new items stored, not {expected_new}"
        )
    if row["reported_new"] is not None and row["reported_new"] != row["new_items"]:
        problems.append(
            f"{name} cycle {n}: reported {row['reported_new']} new, stored {row['new_items']}"
        )
    if row["feeds"] != feeds or row["feeds_ok"] != feeds:
        problems.append(f"{name} cycle {n}: {row['feeds_ok']}/{row['feeds']} feeds ok of {feeds}")
    if row["http"].get(expected_status, 0) != feeds or sum(row["http"].values()) != feeds:
        problems.append(
            f"{name} cycle {n}: nginx answered {row['http']}, not {feeds} x {expected_status}"
        )
    if n > 1 and row["not_modified"] is not None and row["not_modified"] != feeds:
        problems.append(f"{name} cycle {n}: {row['not_modified']} not-modified results of {feeds}")
    if row["errors"]:
        problems.append(f"{name} cycle {n}: errors, e.g. {row['errors'][:3]}")
    return problems


def run_contender(spec: dict[str, Any]) -> int:
    name = spec["contender"]
    result: dict[str, Any] = {"contender": name, "cycles": [], "problems": []}
    monitor = Monitor(spec, result)
    monitor.start()
    t0 = time.perf_counter()
    contender = FeedhubContender(spec) if name == "feedhub" else ReaderContender(spec)
    result["setup_seconds"] = round(time.perf_counter() - t0, 2)
    result["setup_rss_mib"] = round(peak_rss_mib(), 1)
    log(f"{name}: ready in {result['setup_seconds']} s ({len(spec['urls'])} feeds added)")
    write_result(spec, result)
    items = contender.count_items()
    for n in range(1, spec["cycles"] + 1):
        time.sleep(0.3)
        monitor.begin(n)
        access = AccessLog(Path(spec["access_log"]))
        wanted = spec["profile_dir"] and n in (spec["profile_cycles"] or [n])
        profiler = Profiler(spec["profile_clock"]) if wanted else None
        log(f"{name} cycle {n}: {'all new' if n == 1 else 'all 304'} expected")
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        tree0 = descendants_cpu()
        if profiler:
            profiler.start()
        start = time.perf_counter()
        outcome = contender.cycle()
        seconds = time.perf_counter() - start
        if profiler:
            profiler.stop(Path(spec["profile_dir"]) / f"poll-{name}-cycle{n}.prof")
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        tree1 = descendants_cpu()
        workers_rss = monitor.end()
        time.sleep(0.3)  # nginx logs a request just after answering it
        now_items = contender.count_items()
        http, connections = access.take()
        row = {
            "cycle": n,
            "seconds": round(seconds, 3),
            "new_items": now_items - items,
            "items_total": now_items,
            **outcome,
            "http": http,
            "connections": len(connections),
            "cpu_seconds": round(
                usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime, 2
            ),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "children_peak_rss_mib": round(
                max(peak_rss_mib(resource.RUSAGE_CHILDREN), workers_rss), 1
            ),
            "children_cpu_seconds": round(
                sum(cpu - tree0.get(pid, 0.0) for pid, cpu in tree1.items()), 2
            ),
        }
        items = now_items
        row["feeds_per_s"] = round(row["feeds"] / seconds, 1)
        poll_seconds = max(seconds - row["post_seconds"], 1e-9)
        row["poll_feeds_per_s"] = round(row["feeds"] / poll_seconds, 1)
        row["items_per_s"] = round(row["new_items"] / seconds, 1)
        row["profiled"] = profiler is not None
        problems = check_cycle(spec, row)
        result["cycles"].append(row)
        result["problems"].extend(problems)
        write_result(spec, result)
        log(
            f"{name} cycle {n}: {row['feeds']} feeds in {seconds:.2f} s = {row['feeds_per_s']} "
            f"feeds/s, {row['new_items']} new items, peak RSS {row['peak_rss_mib']} MiB"
            + ("" if not problems else f" -- CHECK FAILED: {problems}")
        )
    contender.close()
    db_bytes = sum(p.stat().st_size for p in Path(spec["db_dir"]).glob("*.db*"))
    db_bytes += sum(p.stat().st_size for p in Path(spec["db_dir"]).glob("*.sqlite*"))
    result["db_mib"] = round(db_bytes / 2**20, 1)
    write_result(spec, result)
    return 0


def child_main(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    for url in spec["urls"]:
        farm.check_loopback(url)
    return run_contender(spec)


if __name__ == "__main__":
    raise SystemExit(main())
