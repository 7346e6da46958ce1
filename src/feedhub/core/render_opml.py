"""OPML 2.0 subscription lists: written for ``feedhub opml export``, read for ``opml import``.

Writing nests outlines as given (a folder is an outline with children). Reading flattens:
every outline with an ``xmlUrl`` becomes one ``OpmlOutline`` whose ``category`` is the path of
folders above it (``"广东/深圳"``), else its own ``category`` attribute. Readers export
folders both ways, and the folder is what their user saw.

An OPML file comes from a user's disk or another service, so it is read as hostile, the way
defusedxml does it: expat reports each entity declaration before any use, and the first one
stops the parse, so nothing is ever expanded (billion laughs) or fetched (external entities).
libxml2 is not used for reading because it expands entities inside attribute values even with
``resolve_entities=False``. The bytes are decoded first as feeds are, since expat cannot read
GBK or Big5, which older Chinese readers export.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.parsers import expat

from lxml import etree

from feedhub.core.normalize import decode_document
from feedhub.errors import ParseError

__all__ = ["OpmlOutline", "parse_opml", "render_opml"]

_CATEGORY_SEPARATOR = "/"
_DEFAULT_SOURCE = "<opml>"
# As in ``render``, which imports this module and so cannot be imported from here.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class OpmlOutline:
    """One feed subscription, or a folder of them when ``children`` is non-empty.

    A folder's ``xml_url`` is empty and not written.
    """

    text: str
    xml_url: str
    html_url: str | None = None
    title: str | None = None
    type: str = "rss"
    category: str | None = None
    children: tuple[OpmlOutline, ...] = ()


def render_opml(title: str, outlines: Sequence[OpmlOutline], *, date: datetime) -> bytes:
    """OPML 2.0, UTF-8. ``date`` (aware; the caller's ``now``) is written as ``dateCreated``."""
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"naive datetime {date.isoformat()}: the OPML date must be aware")
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = _xml_safe(title)
    etree.SubElement(head, "dateCreated").text = format_datetime(date.astimezone(UTC), usegmt=True)
    body = etree.SubElement(root, "body")
    for outline in outlines:
        _write(body, outline)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True))


def _write(parent: etree._Element, outline: OpmlOutline) -> None:
    attributes = {"text": outline.text}
    if outline.title:
        attributes["title"] = outline.title
    if outline.xml_url:
        attributes["type"] = outline.type
        attributes["xmlUrl"] = outline.xml_url
    if outline.html_url:
        attributes["htmlUrl"] = outline.html_url
    if outline.category:
        attributes["category"] = outline.category
    safe = {name: _xml_safe(value) for name, value in attributes.items()}
    element = etree.SubElement(parent, "outline", attrib=safe)
    for child in outline.children:
        _write(element, child)


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


def parse_opml(data: bytes, *, url: str = _DEFAULT_SOURCE) -> list[OpmlOutline]:
    """Every feed in the document, in document order, folders flattened into ``category``.

    ``url`` names the document in errors (a file path will do). Raises ``ParseError`` for
    anything that is not well-formed OPML, or that declares entities.
    """
    reader = _Reader()
    parser = expat.ParserCreate(encoding="UTF-8")  # the text below is UTF-8 whatever it says
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    try:
        parser.Parse(decode_document(data).text.encode("utf-8"), True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code) or "not well-formed"
        raise ParseError(url, f"not OPML: {reason} (line {exc.lineno})") from exc
    except _Refused as exc:
        raise ParseError(url, f"not OPML: {exc}") from exc
    if not reader.saw_body:
        raise ParseError(url, "not OPML: no <body>")
    return reader.feeds


class _Refused(Exception):
    """Raised inside expat callbacks to stop the parse at once."""


def _refuse_entity(name: str, *_: object) -> None:
    raise _Refused(f"the document declares XML entities ({name!r}), which are refused")


class _Reader:
    """Collects feeds while expat walks the document; no tree is built."""

    def __init__(self) -> None:
        self.feeds: list[OpmlOutline] = []
        self.saw_body = False
        self._path: list[str] = []  # element names from the root down
        self._folders: list[str | None] = []  # text of each open outline

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if not self._path and name != "opml":
            raise _Refused(f"the root element is <{name}>")
        parent = self._path[-1] if self._path else None
        self._path.append(name)
        if name == "body" and parent == "opml":
            self.saw_body = True
        if name != "outline" or "body" not in self._path:
            return
        attrs = {key.lower(): value.strip() for key, value in attributes.items()}
        text = attrs.get("text") or attrs.get("title") or None
        xml_url = attrs.get("xmlurl")
        if xml_url:
            folders = [folder for folder in self._folders if folder]
            self.feeds.append(
                OpmlOutline(
                    text=text or xml_url,
                    xml_url=xml_url,
                    html_url=attrs.get("htmlurl") or None,
                    title=attrs.get("title") or None,
                    type=attrs.get("type") or "rss",
                    category=_CATEGORY_SEPARATOR.join(folders) or attrs.get("category") or None,
                )
            )
        self._folders.append(text)

    def end(self, name: str) -> None:
        self._path.pop()
        if name == "outline" and "body" in self._path:
            self._folders.pop()
