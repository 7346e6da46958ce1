"""The composition root: ``feedhub check | config-schema | poll | sources | log | run``.

Settings are loaded once here and passed down; nothing below reads the environment or the clock
on its own account except where a ``clock`` default says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from feedhub import __version__
from feedhub.config import LoadedConfig, config_path, json_schema, load_settings
from feedhub.errors import ConfigError, FeedhubError
from feedhub.logs import setup_logging

if TYPE_CHECKING:
    from feedhub.poll_report import PollReport, PollResult
    from feedhub.settings import Settings
    from feedhub.storage.base import Storage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedhub", description="Aggregate regional news feeds: poll, store, republish."
    )
    parser.add_argument("--version", action="version", version=f"feedhub {__version__}")
    parser.add_argument(
        "--config", help="YAML config (default: $FEEDHUB_CONFIG, else config/feedhub.yaml)"
    )
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error")
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="default: json"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("check", help="validate the config; exit 1 on errors")
    sub.add_parser("config-schema", help="print the config's JSON Schema (for editors)")

    poll = sub.add_parser("poll", help="poll the due sources once, then print a summary")
    poll.add_argument("--all", action="store_true", help="every enabled source, due or not")
    poll.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable; not due ok)"
    )
    poll.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("sources", help="each source's state: last success, last error, next check")

    stories = sub.add_parser("stories", help="recent stories carried by several sources")
    stories.add_argument("--limit", type=int, default=30)
    stories.add_argument("--all", action="store_true", help="single-source stories too")
    story = sub.add_parser("story", help="explain a story: its members and what joined each")
    story.add_argument("id", metavar="ID", help="a story id, or the id of any of its items")

    sub.add_parser("sections", help="the section tree with item and story counts")
    explain = sub.add_parser("explain", help="why an item is filed under its section")
    explain.add_argument("id", metavar="ITEM_ID", help="an item id (as in feeds and `story`)")
    pin = sub.add_parser("pin", help="pin an item to a section (also a training example)")
    pin.add_argument("id", metavar="ITEM_ID")
    pin.add_argument("section", metavar="SECTION", nargs="?", help="a leaf section id")
    pin.add_argument("--clear", action="store_true", help="remove the pin")
    train = sub.add_parser("train", help="train the section classifier now, then file items")
    train.add_argument("--force", action="store_true", help="even if nothing changed")
    sub.add_parser("file", help="file waiting items under sections now")

    fetchlog = sub.add_parser("log", help="recent fetches, newest first")
    fetchlog.add_argument("--source", metavar="ID")
    fetchlog.add_argument("--limit", type=int, default=30)

    export = sub.add_parser(
        "export", help="write every feed, the OPML and the reader pages as a static site"
    )
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--limit", type=int, default=None, help="entries per feed (1-200)")
    export.add_argument("--no-pages", action="store_true", help="feeds and OPML only")

    opml = sub.add_parser("opml", help="OPML of the sources: export, or import into the config")
    opml_sub = opml.add_subparsers(dest="opml_command", required=True, metavar="ACTION")
    opml_export = opml_sub.add_parser("export", help="write the configured sources as OPML")
    opml_export.add_argument("--out", metavar="FILE", help="default: standard output")
    opml_import = opml_sub.add_parser("import", help="add an OPML's feeds to the YAML config")
    opml_import.add_argument("file", metavar="FILE")
    opml_import.add_argument("--section", metavar="ID", help="file every new source here")

    run = sub.add_parser(
        "run", help="serve feeds over HTTP and poll on schedule (reloads config on change/SIGHUP)"
    )
    run.add_argument(
        "--role",
        choices=("all", "web", "worker"),
        default="all",
        help="web: HTTP only; worker: polling only; all (default): both",
    )
    run.add_argument("--host", help="listen address (default: web.host, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: web.port, 8080)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    default_level = "info" if args.command == "run" else "warning"
    setup_logging(args.log_level or default_level, args.log_format)
    if args.command == "config-schema":
        print(json_schema())
        return 0
    path = config_path(args.config, os.environ)
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red]: {problem}", markup=True, highlight=False)
        err.print(f"{len(exc.problems)} problem(s) in {path}", highlight=False)
        return 1
    if args.command == "check":
        s = loaded.settings
        console.print(
            f"{path}: ok ({len(s.sources)} sources, {len(s.sections)} sections, "
            f"storage {s.storage.url.split('://')[0]})",
            highlight=False,
        )
        return 0
    if args.command == "opml":
        return _opml(args, loaded, console, err)
    from feedhub.storage import open_storage

    try:
        storage = open_storage(loaded.settings.storage.url)
        try:
            storage.migrate()
            return _dispatch(args, loaded, storage, console, err)
        finally:
            storage.close()
    except FeedhubError as exc:
        err.print(f"[red]error[/red]: {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def _dispatch(
    args: argparse.Namespace,
    loaded: LoadedConfig,
    storage: Storage,
    console: Console,
    err: Console,
) -> int:
    if args.command == "poll":
        return _poll(args, loaded, storage, console, err)
    if args.command == "sources":
        from feedhub.pipeline import source_specs

        storage.sync_sources(source_specs(loaded.settings), datetime.now(UTC))
        _print_sources(loaded, storage, console)
        return 0
    if args.command == "log":
        _print_log(storage, console, args.source, args.limit)
        return 0
    if args.command in ("stories", "story"):
        from feedhub.cli_stories import print_stories, print_story

        if args.command == "stories":
            print_stories(loaded.settings, storage, console, args.limit, args.all)
            return 0
        return print_story(loaded.settings, storage, console, err, args.id)
    if args.command in ("sections", "explain", "pin", "train", "file"):
        return _sections(args, loaded.settings, storage, console, err)
    if args.command == "export":
        from pathlib import Path

        from feedhub.cli_publish import export_static

        limit = args.limit or loaded.settings.web.feed_limit
        if not 1 <= limit <= 200:
            err.print("[red]error[/red]: --limit must be from 1 to 200")
            return 1
        written = export_static(
            loaded.settings, storage, Path(args.out), limit, pages=not args.no_pages
        )
        console.print(f"wrote {len(written)} files to {args.out}", highlight=False)
        return 0
    if args.command == "run":
        import uvloop  # comes with uvicorn[standard]; a quicker loop for the HTTP side

        from feedhub.service import serve

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(loaded, storage, role=args.role, host=args.host, port=args.port))
        return 0
    raise AssertionError(args.command)


def _sections(
    args: argparse.Namespace,
    settings: Settings,
    storage: Storage,
    console: Console,
    err: Console,
) -> int:
    from feedhub import cli_sections

    if args.command == "sections":
        cli_sections.print_sections(settings, storage, console)
        return 0
    if args.command == "explain":
        return cli_sections.print_explain(settings, storage, console, err, args.id)
    if args.command == "pin":
        if (args.section is None) == (not args.clear):
            err.print("[red]error[/red]: give a SECTION, or --clear")
            return 2
        return cli_sections.pin(settings, storage, console, err, args.id, args.section)
    if args.command == "train":
        return cli_sections.retrain(settings, storage, console, err, args.force)
    return cli_sections.file_now(settings, storage, console)


def _opml(args: argparse.Namespace, loaded: LoadedConfig, console: Console, err: Console) -> int:
    from pathlib import Path

    from feedhub.cli_publish import import_opml, sources_opml

    if args.opml_command == "export":
        data = sources_opml(loaded.settings)
        if args.out:
            Path(args.out).write_bytes(data)
            console.print(f"wrote {len(loaded.settings.sources)} sources to {args.out}")
        else:
            sys.stdout.buffer.write(data)
        return 0
    if args.section and args.section not in {s.id for s in loaded.settings.sections}:
        err.print(f"[red]error[/red]: unknown section {args.section!r}")
        return 1
    try:
        added = import_opml(loaded, Path(args.file), section=args.section)
    except (OSError, FeedhubError) as exc:
        err.print(f"[red]error[/red]: {exc}", highlight=False)
        return 1
    if not added:
        console.print("nothing to add: every feed in the OPML is configured already")
    else:
        console.print(
            f"added {len(added)} source(s) to {loaded.path}: {', '.join(added)}", highlight=False
        )
    return 0


def _poll(
    args: argparse.Namespace,
    loaded: LoadedConfig,
    storage: Storage,
    console: Console,
    err: Console,
) -> int:
    from feedhub.pipeline import poll_sources

    settings = loaded.settings
    known = {s.id for s in settings.sources}
    if args.source:
        unknown = [sid for sid in args.source if sid not in known]
        if unknown:
            err.print(f"[red]error[/red]: unknown source id(s): {', '.join(unknown)}")
            return 1
    progress = Progress(
        TextColumn("polling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=err,
        disable=args.no_progress or not err.is_terminal,
        transient=True,
    )
    task = progress.add_task("poll", total=0, last="")

    def started(n: int) -> None:
        total = progress.tasks[0].total or 0
        progress.update(task, total=total + n)

    def finished(result: PollResult) -> None:
        progress.update(task, advance=1, last=result.source_id)

    with progress:
        report = asyncio.run(
            poll_sources(
                settings,
                storage,
                source_ids=args.source,
                ignore_schedule=bool(args.all or args.source),
                on_start=started,
                on_result=finished,
            )
        )
    _print_report(report, loaded, console)
    return 0


def _print_report(report: PollReport, loaded: LoadedConfig, console: Console) -> None:
    if not report.results:
        console.print("nothing was due (use --all to poll every source now)")
        if report.busy:
            console.print(f"{report.busy} source(s) are being polled by another process")
        return
    names = {s.id: s.name for s in loaded.settings.sources}
    table = Table(title=f"poll: {len(report.results)} sources in {report.elapsed:.1f}s")
    for column in ("source", "name", "status", "new", "updated", "error"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "not_modified": "dim", "error": "red", "gone": "red"}
    for r in sorted(report.results, key=lambda r: (r.status == "ok", r.source_id)):
        status = r.status if r.http_status is None else f"{r.status} ({r.http_status})"
        note = r.error or (f"moved permanently to {r.redirected_to}" if r.redirected_to else "")
        if not note and r.warnings:
            note = f"{len(r.warnings)} warning(s): {r.warnings[0]}"
        table.add_row(
            r.source_id,
            names.get(r.source_id, ""),
            f"[{styles.get(r.status, '')}]{status}[/]",
            str(r.new),
            str(r.updated),
            note,
        )
    console.print(table)
    console.print(
        f"{report.ok} ok, {report.not_modified} not modified, {report.errors} failed; "
        f"{report.new_items} new, {report.updated_items} updated items",
        highlight=False,
    )
    if report.busy:
        console.print(f"{report.busy} source(s) skipped: being polled by another process")


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = (now - when).total_seconds()
    sign, seconds = ("in ", -seconds) if seconds < 0 else ("", seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds / size:.0f}{unit}"
            break
    else:
        text = f"{seconds:.0f}s"
    return f"{sign}{text}" if sign else f"{text} ago"


def _print_sources(loaded: LoadedConfig, storage: Storage, console: Console) -> None:
    now = datetime.now(UTC)
    states = {s.source_id: s for s in storage.list_states()}
    table = Table(title=f"{len(loaded.settings.sources)} sources")
    for column in ("source", "state", "last success", "next check", "items", "last error"):
        table.add_column(column, overflow="fold")
    for source in loaded.settings.sources:
        state = states.get(source.id)
        if state is None:
            continue
        if not source.enabled:
            status = "[dim]disabled in config[/]"
        elif state.disabled_reason:
            status = f"[red]{state.disabled_reason}[/]"
        elif state.error_count:
            status = f"[red]{state.error_count} error(s) in a row[/]"
        elif state.last_success_at is None:
            status = "new"
        else:
            status = "[green]ok[/]"
        if state.redirected_to:
            status += f"\n[yellow]moved to {state.redirected_to}: update the config[/]"
        table.add_row(
            source.id,
            status,
            _ago(state.last_success_at, now),
            _ago(state.next_check_at, now) if source.enabled else "-",
            str(state.item_count),
            state.last_error or "",
        )
    console.print(table)


def _print_log(storage: Storage, console: Console, source_id: str | None, limit: int) -> None:
    now = datetime.now(UTC)
    table = Table(title="fetch log")
    for column in ("when", "source", "status", "ms", "bytes", "new", "updated", "error"):
        table.add_column(column, overflow="fold")
    for e in storage.fetch_log(source_id, limit):
        table.add_row(
            _ago(e.started_at, now),
            e.source_id,
            str(e.status or "-"),
            f"{e.duration * 1000:.0f}",
            str(e.bytes),
            str(e.new_items),
            str(e.updated_items),
            e.error or "",
        )
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
