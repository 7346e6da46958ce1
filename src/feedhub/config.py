"""Load ``feedhub.yaml`` into validated ``Settings``, with ``file:line`` on every error.

The YAML is read with ruamel.yaml's round-trip loader because it keeps the line of every key and
item; pydantic's error locations (``('sources', 3, 'url')``) are mapped back through it. Checks
that span entries (duplicate ids, unknown parent or section) run after pydantic, with the same
locations. Nothing here is global: ``load_settings`` returns a value the caller passes down.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from feedhub import __version__
from feedhub.errors import ConfigError
from feedhub.settings import Settings

DEFAULT_PATH = Path("config/feedhub.yaml")
ENV_CONFIG = "FEEDHUB_CONFIG"
ENV_STORAGE_URL = "FEEDHUB_STORAGE_URL"

Loc = tuple[str | int, ...]


def config_path(cli_value: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``FEEDHUB_CONFIG``, then ``config/feedhub.yaml``."""
    if cli_value:
        return Path(cli_value)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return DEFAULT_PATH


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    settings: Settings
    mtime_ns: int


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, validate and return the settings; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give --config or set {ENV_CONFIG})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return LoadedConfig(path, parse_settings(text, str(path), env), stat.st_mtime_ns)


def parse_settings(text: str, filename: str, env: Mapping[str, str]) -> Settings:
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{filename}{line}: {exc.problem or exc.context}") from exc
    except YAMLError as exc:
        raise ConfigError(f"{filename}: {exc}") from exc
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError(
            f"{filename}:1: the file must be a mapping of sections (site, sources, ...)"
        )
    data = _plain(document)
    if env.get(ENV_STORAGE_URL):
        data.setdefault("storage", {})
        if isinstance(data["storage"], dict):
            data["storage"]["url"] = env[ENV_STORAGE_URL]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                _format(filename, document, tuple(e["loc"]), e["msg"], e["type"])
                for e in exc.errors()
            ]
        ) from exc
    problems = [_format(filename, document, loc, msg) for loc, msg in _cross_checks(settings)]
    if problems:
        raise ConfigError(problems)
    return settings


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts/lists pydantic validates strictly."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def _first_index(
    ids: list[str], key: str, kind: str
) -> tuple[dict[str, int], list[tuple[Loc, str]]]:
    """Where each id is first defined, and a problem for every later duplicate."""
    first: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, ident in enumerate(ids):
        if ident in first:
            problems.append(
                (
                    (key, i, "id"),
                    f"duplicate {kind} id {ident!r} (first defined as entry {first[ident] + 1})",
                )
            )
        first.setdefault(ident, i)
    return first, problems


def _cross_checks(settings: Settings) -> list[tuple[Loc, str]]:
    section_ids, problems = _first_index([s.id for s in settings.sections], "sections", "section")
    for i, section in enumerate(settings.sections):
        if section.parent is not None and section.parent not in section_ids:
            problems.append(
                (("sections", i, "parent"), f"unknown parent section {section.parent!r}")
            )
    problems.extend(_cycles(settings))
    _, duplicates = _first_index([s.id for s in settings.sources], "sources", "source")
    problems.extend(duplicates)
    for i, source in enumerate(settings.sources):
        if source.section is not None and source.section not in section_ids:
            problems.append((("sources", i, "section"), f"unknown section {source.section!r}"))
        if source.timezone is not None and not _zone_exists(source.timezone):
            problems.append((("sources", i, "timezone"), f"unknown time zone {source.timezone!r}"))
    fallback = settings.categorize.fallback
    if fallback is not None:
        parents = {s.parent for s in settings.sections}
        if fallback not in section_ids:
            problems.append((("categorize", "fallback"), f"unknown section {fallback!r}"))
        elif fallback in parents:
            problems.append(
                (("categorize", "fallback"), f"section {fallback!r} has children: use a leaf")
            )
    if settings.site.timezone is not None and not _zone_exists(settings.site.timezone):
        problems.append((("site", "timezone"), f"unknown time zone {settings.site.timezone!r}"))
    return problems


def _cycles(settings: Settings) -> list[tuple[Loc, str]]:
    parents = {s.id: s.parent for s in settings.sections}
    problems: list[tuple[Loc, str]] = []
    for i, section in enumerate(settings.sections):
        seen = {section.id}
        current = section.parent
        while current is not None and current in parents:
            if current in seen:
                problems.append(
                    (("sections", i, "parent"), f"section {section.id!r} is its own ancestor")
                )
                break
            seen.add(current)
            current = parents[current]
    return problems


def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _format(filename: str, document: Any, loc: Loc, msg: str, kind: str = "") -> str:
    line = _line_of(document, loc)
    where = f"{filename}:{line}" if line else filename
    key = _dotted(document, loc)
    if kind == "extra_forbidden":
        msg = "unknown key"
    msg = msg.removeprefix("Value error, ")
    return f"{where}: {key}: {msg}" if key else f"{where}: {msg}"


def _dotted(document: Any, loc: Loc) -> str:
    """``sources[3].url`` reads better with the id: ``sources[3] (id=xinhua).url``."""
    parts: list[str] = []
    node = document
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            if isinstance(node, Sequence) and 0 <= step < len(node):
                node = node[step]
                if isinstance(node, Mapping) and isinstance(node.get("id"), str):
                    label += f" (id={node['id']})"
            else:
                node = None
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(step))
            node = node.get(step) if isinstance(node, Mapping) else None
    return "".join(parts)


def _line_of(document: Any, loc: Loc) -> int | None:
    """1-based line of the deepest node of ``loc`` that exists in the YAML."""
    line: int | None = 1 if loc else None
    node = document
    for step in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, Mapping) and isinstance(step, str) and step in node:
            if lc is not None:
                line = lc.key(step)[0] + 1
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            if lc is not None:
                line = lc.item(step)[0] + 1
            node = node[step]
        elif isinstance(node, Mapping) and step == 0:
            continue  # one mapping written where a list is allowed (``rules:``): its item 0
        else:
            break
    return line


def default_user_agent(settings: Settings) -> str:
    return settings.fetch.user_agent or f"feedhub/{__version__} (+{settings.site.base_url})"


def json_schema() -> str:
    """JSON Schema of the YAML file, for editors (yaml-language-server)."""
    schema = Settings.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "feedhub configuration"
    return json.dumps(schema, ensure_ascii=False, indent=2)
