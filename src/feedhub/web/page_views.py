"""Rendering the pages: compiled templates, and the context each page is given.

Kept apart from ``pages.py`` (HTTP: routing, caching, headers) so each stays small. Everything
here is deterministic for a given data version and site settings, which is what lets the
handler derive ETags without rendering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

from feedhub.core.dates import default_timezone_for, zone
from feedhub.settings import SiteSettings
from feedhub.web.portal import Page, PortalData, SectionNode, SectionTree, StoryCard

STATIC_DIR = Path(__file__).parent / "static"
_TEMPLATE_DIR = Path(__file__).parent / "templates"
_TEMPLATES = ("home", "section", "story", "search", "not_found")
_FEED_TYPES = (
    ("xml", "RSS", "application/rss+xml"),
    ("atom", "Atom", "application/atom+xml"),
    ("json", "JSON", "application/feed+json"),
)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """One compiled set of templates per process; ``auto_reload`` off, so no request stats a
    file. Undefined names are errors, so a template typo fails the tests instead of rendering
    an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATE_DIR),
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = _clip
    env.filters["ext_url"] = _ext_url
    env.globals["section_url"] = section_url
    env.globals["story_url"] = story_url
    for name in _TEMPLATES:
        env.get_template(f"{name}.html.j2")
    return env


@lru_cache(maxsize=1)
def template_digest() -> str:
    """Changes when a template or the stylesheet changes, so a deploy invalidates ETags."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted([*_TEMPLATE_DIR.glob("*.j2"), *STATIC_DIR.glob("*.css")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def section_url(section_id: str) -> str:
    return "/section/" + quote(section_id, safe="")


def story_url(story_id: str) -> str:
    return "/story/" + quote(story_id, safe="")


def _clip(text: str, length: int = 120) -> str:
    return text if len(text) <= length else text[:length].rstrip() + "…"


def _ext_url(url: str | None) -> str:
    """Only absolute http(s) addresses become links: escaping does not stop ``javascript:``."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return ""


def highlight(text: str, q: str) -> Markup:
    """``text`` escaped, with each case-insensitive occurrence of ``q`` in ``<mark>``.

    Split before escaping, so a query can never match inside an entity it created."""
    if not q:
        return escape(text)
    lowered, needle = text.lower(), q.lower()
    parts: list[str] = []
    start = 0
    while (found := lowered.find(needle, start)) >= 0:
        end = found + len(needle)
        parts.append(str(escape(text[start:found])))
        parts.append(f"<mark>{escape(text[found:end])}</mark>")
        start = end
    parts.append(str(escape(text[start:])))
    return Markup("".join(parts))


@dataclass(frozen=True, slots=True)
class TreeNode:
    node: SectionNode
    children: tuple[TreeNode, ...]


def section_tree(nodes: Sequence[SectionNode]) -> tuple[TreeNode, ...]:
    """Nested nodes in the given order; a node whose parent is unknown is shown at the top."""
    known = {n.id for n in nodes}
    children: dict[str | None, list[SectionNode]] = {}
    for n in nodes:
        children.setdefault(n.parent if n.parent in known else None, []).append(n)

    def build(parent: str | None, seen: frozenset[str]) -> tuple[TreeNode, ...]:
        return tuple(
            TreeNode(n, build(n.id, seen | {n.id}))
            for n in children.get(parent, ())
            if n.id not in seen
        )

    return build(None, frozenset())


def breadcrumb(nodes: Sequence[SectionNode], section_id: str | None) -> list[SectionNode]:
    """Root-first chain of sections down to ``section_id`` (empty when unknown)."""
    by_id = {n.id: n for n in nodes}
    chain: list[SectionNode] = []
    current = by_id.get(section_id) if section_id else None
    while current is not None and current not in chain:
        chain.append(current)
        current = by_id.get(current.parent) if current.parent else None
    return chain[::-1]


def feed_groups(title: str, node: SectionNode | None) -> list[tuple[str, list[dict[str, str]]]]:
    """The page's feeds by scope, its own first (a reader that autodiscovers takes the first)."""
    scopes = [("全站", "all", f"{title} 全部")]
    if node is not None:
        path = "section/" + quote(node.id, safe="")
        scopes.insert(0, (f"「{node.title}」", path, f"{title} {node.title}"))
    return [
        (
            label,
            [
                {
                    "href": f"/feeds/{path}.{ext}",
                    "type": mime,
                    "title": f"{name} ({kind})",
                    "label": kind,
                }
                for ext, kind, mime in _FEED_TYPES
            ],
        )
        for label, path, name in scopes
    ]


class Views:
    """Turns ``PortalData`` answers into template contexts and renders them."""

    def __init__(self, css_digest: str) -> None:
        env = _environment()
        self.templates = {name: env.get_template(f"{name}.html.j2") for name in _TEMPLATES}
        self.css_href = "/static/style.css?v=" + css_digest

    def _base(
        self, site: SiteSettings, nodes: Sequence[SectionNode], current: SectionNode | None
    ) -> dict[str, Any]:
        tz: tzinfo = zone(site.timezone or default_timezone_for(site.language))

        def when(moment: datetime | None) -> str:
            return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

        chain = breadcrumb(nodes, current.id if current else None)
        groups = feed_groups(site.title, current)
        tree = section_tree(nodes)
        # The second navigation row shows the children of the current top-level section.
        top = next((t for t in tree if chain and t.node.id == chain[0].id), None)
        return {
            "site": site,
            "css_href": self.css_href,
            "tree": tree,
            "subnav": top.children if top else (),
            "active": {n.id for n in chain},
            "crumbs": chain,
            "feed_groups": groups,
            "feeds": [feed for _, group in groups for feed in group],
            "when": when,
            "iso": lambda m: m.isoformat() if m else "",
            "q": "",
            "is_home": False,
        }

    def _render(self, name: str, context: dict[str, Any]) -> bytes:
        return self.templates[name].render(context).encode()

    def home(self, site: SiteSettings, data: PortalData, n: int) -> bytes:
        nodes = data.sections()
        boxes = [(node, data.latest(node.id, 6)) for node in nodes if node.count > 0]
        latest = data.latest(None, n)
        # The hot ranking last: asking for it may start its refresh in the background, which
        # then competes with this thread for the interpreter.
        context = self._base(site, nodes, None)
        context.update(hot=data.hot(None, n), latest=latest, boxes=boxes, is_home=True)
        return self._render("home", context)

    def section(
        self, site: SiteSettings, data: PortalData, section_id: str, page: int, per_page: int
    ) -> bytes | None:
        nodes = _tree(data)  # the page shows its own total, from the listing
        node = next((s for s in nodes if s.id == section_id), None)
        if node is None:
            return None
        listing = data.section_stories(section_id, page, per_page)
        if listing is None or page > listing.pages:
            return None
        context = self._base(site, nodes, node)
        context.update(
            node=node,
            children=[s for s in nodes if s.parent == node.id],
            listing=listing,
            pager=_pager(listing, section_url(node.id), ""),
            hot=data.hot(section_id, 10),
        )
        return self._render("section", context)

    def story(self, site: SiteSettings, data: PortalData, story_id: str, n: int) -> bytes | None:
        found = data.story(story_id)
        if found is None:
            return None
        nodes = _tree(data)
        card = found.card
        node = next((s for s in nodes if s.id == card.section_id), None)
        context = self._base(site, nodes, node)
        context.update(
            story=found,
            card=card,
            node=node,
            content=Markup(found.content_html),  # sanitized at ingestion: the one raw field
            related=found.related,
            latest=_without(data.latest(None, n + 1), card.id, n),
            hot=_without(data.hot(None, n + 1), card.id, n),  # last: see home()
        )
        return self._render("story", context)

    def search(
        self, site: SiteSettings, data: PortalData, q: str, page: int, per_page: int
    ) -> bytes | None:
        nodes = _tree(data)
        result = data.search(q, page, per_page) if q else None
        if result is not None and page > result.pages:
            return None
        if result is None and page != 1:
            return None
        context = self._base(site, nodes, None)
        context.update(
            q=q,
            result=result,
            pager=_pager(result, "/search", "q=" + quote(q, safe="")) if result else [],
            mark=lambda text: highlight(text, q),
            latest=data.latest(None, 10) if result is None or not result.items else (),
        )
        return self._render("search", context)

    def not_found(self, site: SiteSettings, data: PortalData) -> bytes:
        nodes = _tree(data)
        context = self._base(site, nodes, None)
        context.update(latest=data.latest(None, 10))
        return self._render("not_found", context)


def _tree(data: PortalData) -> Sequence[SectionNode]:
    """The sections for a page that shows no counts (see ``SectionTree``)."""
    return data.section_tree() if isinstance(data, SectionTree) else data.sections()


def _without(cards: Sequence[StoryCard], story_id: str, n: int) -> list[StoryCard]:
    return [c for c in cards if c.id != story_id][:n]


def _pager(listing: Page, base: str, query: str) -> list[tuple[str, str | None, bool]]:
    """(label, href or None, current) for 上一页, a window of page numbers, 下一页."""
    if listing.pages <= 1:
        return []

    def href(number: int) -> str:
        params = "&".join(p for p in (query, f"page={number}" if number > 1 else "") if p)
        return f"{base}?{params}" if params else base

    page, last = listing.page, listing.pages
    numbers = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
    items: list[tuple[str, str | None, bool]] = []
    items.append(("上一页", href(page - 1) if page > 1 else None, False))
    previous = 0
    for number in numbers:
        if number - previous > 1:
            items.append(("…", None, False))
        items.append((str(number), href(number), number == page))
        previous = number
    items.append(("下一页", href(page + 1) if page < last else None, False))
    return items
