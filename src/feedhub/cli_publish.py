"""``feedhub export`` and ``feedhub opml export|import``."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from feedhub.config import LoadedConfig, parse_settings
from feedhub.core.render import OpmlOutline, parse_opml, render_opml
from feedhub.errors import ConfigError, FeedhubError
from feedhub.publish import all_scopes
from feedhub.relate import HotBoard
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from feedhub.web.app import site_opml
from feedhub.web.cache import render_scope

EXTENSIONS = ("xml", "atom", "json")


def export_static(
    settings: Settings, storage: Storage, out: Path, limit: int, *, pages: bool = True
) -> list[Path]:
    """Write every feed in every format, the OPML and (with ``pages``) the reader pages as
    files under ``out``."""
    written = []
    hot = HotBoard(storage, lambda: settings)  # one ranking for every hot feed and page
    for scope in all_scopes(settings):
        for ext in EXTENSIONS:
            body, _ = render_scope(settings, storage, scope, ext, limit, hot)
            written.append(_write(out / f"{scope.path}.{ext}", body))
    written.append(_write(out / "opml.xml", site_opml(settings, datetime.now(UTC))))
    if pages:
        from feedhub.static_site import export_pages

        written += export_pages(settings, storage, out, _write, hot)
    return written


def _write(path: Path, body: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(body)
    tmp.replace(path)
    return path


def sources_opml(settings: Settings) -> bytes:
    """The configured sources, in folders by section title (readers show folders)."""
    titles = {s.id: s.title for s in settings.sections}
    groups: dict[str, list[OpmlOutline]] = {}
    for source in settings.sources:
        folder = titles.get(source.section or "", "未分类")
        groups.setdefault(folder, []).append(
            OpmlOutline(text=source.name, title=source.name, xml_url=source.url)
        )
    outlines = [
        OpmlOutline(text=folder, xml_url="", children=tuple(children))
        for folder, children in groups.items()
    ]
    return render_opml(f"{settings.site.title} 的订阅源", outlines, date=datetime.now(UTC))


def _slug(url: str, taken: set[str]) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "feed"
    host = re.sub(r"^(www|rss|feeds?)\.", "", host)
    stem = host.split(".")[0]
    tail = re.sub(
        r"\.(xml|rss|atom|json|php|aspx?)$", "", parts.path.rstrip("/").rsplit("/", 1)[-1]
    )
    base = re.sub(r"[^a-z0-9]+", "-", f"{stem}-{tail}".lower()).strip("-") or "feed"
    if base.endswith("-"):
        base = base.rstrip("-")
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def import_opml(loaded: LoadedConfig, opml_file: Path, *, section: str | None = None) -> list[str]:
    """Append the OPML's feeds to the YAML config, keeping its comments and order.

    Feeds whose URL is already configured are skipped. A folder whose name is a section's id or
    title files its feeds there, unless ``section`` says otherwise. The new file is validated
    before it replaces the old one, so a failed import changes nothing.
    """
    outlines = parse_opml(opml_file.read_bytes(), url=str(opml_file))
    settings = loaded.settings
    by_title = {s.title: s.id for s in settings.sections} | {s.id: s.id for s in settings.sections}
    known_urls = {s.url for s in settings.sources}
    taken = {s.id for s in settings.sources}
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # the "  - id: ..." style of our configs
    text = loaded.path.read_text(encoding="utf-8-sig")
    document = yaml.load(text) or CommentedMap()
    if "sources" not in document or document["sources"] is None:
        document["sources"] = CommentedSeq()
    added = []
    for outline in outlines:
        if not outline.xml_url or outline.xml_url in known_urls:
            continue
        entry = CommentedMap()
        entry["id"] = _slug(outline.xml_url, taken)
        entry["name"] = outline.title or outline.text or entry["id"]
        entry["url"] = outline.xml_url
        folder = (outline.category or "").split("/")[-1]
        target = section or by_title.get(folder)
        if target:
            entry["section"] = target
        document["sources"].append(entry)
        taken.add(entry["id"])
        known_urls.add(outline.xml_url)
        added.append(entry["id"])
    if not added:
        return []
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    new_text = buffer.getvalue()
    try:
        parse_settings(new_text, str(loaded.path), os.environ)
    except ConfigError as exc:
        raise FeedhubError(f"the import would make the config invalid:\n{exc}") from exc
    fd, tmp = tempfile.mkstemp(dir=loaded.path.parent, prefix=".feedhub-import-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new_text)
    shutil.copymode(loaded.path, tmp)
    os.replace(tmp, loaded.path)
    return added
