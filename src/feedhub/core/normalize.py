"""Turning what publishers send into values that compare equal when they mean the same thing.

Bytes become text in the encoding the publisher actually used (not always the one declared),
links lose the tracking parameters that would make one article look like many, HTML is
sanitized once with nh3, and every item gets an id that survives re-polls and a hash that
changes when, and only when, one of its fields does.
"""

from __future__ import annotations

import codecs
import hashlib
import html as htmllib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from html.entities import html5 as html5_entities
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import nh3

from feedhub.models import Item

__all__ = [
    "Decoded",
    "build_item",
    "canonical_parts",
    "canonical_url",
    "content_hash",
    "decode_document",
    "http_url",
    "normalize_encoding",
    "plain_text",
    "repair_xml_entities",
    "sanitize_html",
    "stable_entry_id",
    "text_to_html",
]

# Query parameters that only say how a reader arrived, never which article it is.
TRACKING_PARAMS = frozenset(
    {
        "spm", "from", "fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "twclid",
        "ttclid", "igshid", "mkt_tok", "_ga", "_gl", "ref_src", "ref_url", "smid", "ocid",
        "share_token", "share_source", "share_medium", "share_from", "isappinstalled",
        "scene", "subscene", "clicktime", "enterid", "sharer_sharetime", "sharer_shareid",
        "wfr", "tt_from", "tt_medium", "hmsr", "hmpl", "hmcu", "hmkw", "hmci",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "mc_", "_hs", "hsa_")

_MAX_ID_LENGTH = 512
_BREAKS = re.compile(r"</?(?:br|p|div|li|h[1-6]|tr|td|blockquote)\b[^>]*>", re.IGNORECASE)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_HAS_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}

# --- URLs -------------------------------------------------------------------------------


def canonical_url(url: str, base: str | None = None) -> str:
    """``url`` made absolute against ``base``, without tracking parameters.

    Only what is known to be noise is changed: the remaining query keeps its order and its
    original escaping, so a server that cares about either still gets the same request.
    Anything that is not an http(s) URL comes back stripped but otherwise untouched.
    """
    raw = "".join(url.split())  # feeds wrap long links across lines
    plain = _plain_parts(raw, base)
    if plain is not None:
        scheme, host, path, query, fragment = plain
        result = f"{scheme}://{host}{path}"
        if query:
            result += "?" + query
        return result + "#" + fragment if fragment else result
    if base:
        try:
            raw = urljoin(base, raw)
        except ValueError:
            return raw
    try:
        parts = urlsplit(raw)
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return raw
    userinfo, at, hostport = parts.netloc.rpartition("@")
    hostport = hostport.lower()
    if hostport.endswith(_DEFAULT_PORTS[scheme]):
        hostport = hostport[: -len(_DEFAULT_PORTS[scheme])]
    hostport = hostport.replace(".:", ":").rstrip(".")
    query = _without_tracking(parts.query)
    # Fragments stay: archive pages and single-page sites name the article there.
    fragment = _without_tracking(parts.fragment)
    return urlunsplit((scheme, userinfo + at + hostport, parts.path or "/", query, fragment))


def canonical_parts(url: str) -> tuple[str, str, str, str, str] | None:
    """Scheme, host, path, query and fragment of ``canonical_url(url)`` when ``url`` is a plain
    absolute http(s) URL (most links are), else None: what ``urlsplit`` would make of it."""
    return _plain_parts("".join(url.split()), None)


# An absolute http(s) URL with a lower-case host name and nothing ``urllib`` would change or
# reject: printable ASCII, no user, port or ``;`` parameters. For such a URL urljoin (against
# any base it can parse), urlsplit and urlunsplit only cut it at its ``/``, ``?`` and ``#``
# and put it together again; here a match does the cutting.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9-]+(?:\.[a-z0-9-]+)*)((?:/[!\"$-:<=>@-~]*)?)"
    r"(?:\?([!\"$-~]*))?(?:#([!-~]*))?"
)


def _plain_parts(raw: str, base: str | None) -> tuple[str, str, str, str, str] | None:
    match = _PLAIN_URL.fullmatch(raw)
    if match is None or (base and not _splittable(base)):
        return None
    scheme, host, path, query, fragment = match.groups()
    return (
        scheme,
        host,
        path or "/",
        _without_tracking(query) if query else "",
        _without_tracking(fragment) if fragment else "",
    )


@lru_cache(maxsize=256)
def _splittable(base: str) -> bool:
    """Whether ``urljoin`` can parse ``base`` (else ``canonical_url`` keeps a link as it is)."""
    try:
        urlsplit(base)
    except ValueError:
        return False
    return True


def _without_tracking(pairs: str) -> str:
    return "&".join(p for p in pairs.split("&") if p and not _is_tracking(p))


def _is_tracking(pair: str) -> bool:
    key = unquote(pair.partition("=")[0]).strip().lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def http_url(url: str | None, base: str | None = None) -> str | None:
    """The canonical form of ``url`` if it is an http(s) URL, else ``None``."""
    if not url or not url.strip():
        return None
    result = canonical_url(url, base)
    return result if result.startswith(("http://", "https://")) else None


# --- text and HTML ------------------------------------------------------------------------


def plain_text(value: str, *, is_html: bool = True) -> str:
    """Text for display: tags dropped (when ``is_html``), entities decoded, whitespace collapsed.

    Entities are decoded in plain text too: publishers escape twice far more often than they
    mean a literal ``&amp;``.
    """
    if is_html and "<" in value:
        value = nh3.clean(_BREAKS.sub(" ", value), tags=set())
    if "&" in value:
        value = htmllib.unescape(value)
    if _HAS_INVISIBLE.search(value):  # translating costs a dict lookup per character
        value = value.translate(_INVISIBLE)
    return " ".join(value.split())


def sanitize_html(html: str, base_url: str | None = None) -> str:
    """Safe HTML: no scripts, event handlers or ``javascript:`` URLs; formatting, links and
    images kept. Relative ``href``/``src`` are resolved against ``base_url`` when it is an
    absolute http(s) URL, since the HTML will be shown far from the page it came from."""
    if not html:
        return ""
    if base_url and base_url.startswith(("http://", "https://")):
        try:
            return nh3.clean(html, url_relative=("rewrite_with_base", base_url)).strip()
        except ValueError:  # a base nh3 cannot parse; keep relative URLs as they are
            pass
    return nh3.clean(html).strip()


def text_to_html(text: str) -> str:
    """Plain text as HTML that shows the same characters and line breaks."""
    return htmllib.escape(text.strip()).replace("\n", "<br>")


# --- identity ----------------------------------------------------------------------------


def content_hash(parts: Iterable[str | None]) -> str:
    """SHA-256 over the parts, length-prefixed so that no two part lists collide by joining."""
    chunks = []  # hashed at once: the same digest as hashing each chunk in turn
    for part in parts:
        if part is None:
            chunks.append(b"-;")
        else:
            data = part.encode("utf-8", "surrogatepass")
            chunks.append(b"%d:" % len(data))
            chunks.append(data)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


def stable_entry_id(
    guid: str | None,
    link: str | None,
    *,
    title: str | None,
    summary: str | None,
    content: str | None,
    published: str | None,
) -> str:
    """The id an entry keeps across polls: its guid/id, else its canonical link, else a hash
    of what it says. Over-long ids are hashed so storage keys stay bounded."""
    if guid and guid.strip():
        value = guid.strip()
        if len(value) > _MAX_ID_LENGTH:
            return "sha256:" + content_hash([value])
        return value
    if link:
        if len(link) > _MAX_ID_LENGTH:
            return "sha256:" + content_hash([link])
        return link
    return "hash:" + content_hash([title, summary, content, published])


def build_item(
    *,
    source_id: str,
    entry_id: str,
    link: str | None,
    title: str,
    author: str | None,
    summary: str | None,
    content: str | None,
    published: datetime | None,
    updated: datetime | None,
    categories: Sequence[str],
) -> Item:
    """An ``Item`` whose ``content_hash`` covers every other field."""
    cats = tuple(dict.fromkeys(c for c in categories if c))
    digest = content_hash(
        [
            source_id,
            entry_id,
            link,
            title,
            author,
            summary,
            content,
            published.isoformat() if published else None,
            updated.isoformat() if updated else None,
            *cats,
        ]
    )
    return Item(
        source_id=source_id,
        entry_id=entry_id,
        link=link,
        title=title,
        author=author,
        summary=summary,
        content=content,
        published=published,
        updated=updated,
        categories=cats,
        content_hash=digest,
    )


# --- bytes to text -------------------------------------------------------------------------

_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']\s*([A-Za-z0-9._:-]+)""")
_ILLEGAL_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_AMPERSAND = re.compile(
    r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});)([A-Za-z][A-Za-z0-9]{0,31};)?"
)
_BAD_CHAR_REF = re.compile(
    r"&#(?:0*(?:[0-8]|1[1-2]|1[4-9]|2[0-9]|3[01])|[xX]0*(?:[0-8bcefBCEF]|1[0-9a-fA-F]));"
)
_DOUBLE_BYTE = re.compile(rb"[\x81-\xfe][\x40-\xfe]")
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# '<' or '<?' in the UTF-16/32 byte orders, for documents without a BOM.
_WIDE_PREFIXES = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_UNICODE = ("utf-8", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le")
_GB = frozenset({"gb2312", "gbk", "gb18030", "hz"})
_BIG5 = frozenset({"big5", "big5hkscs", "cp950"})
_LATIN1 = frozenset({"latin-1", "iso8859-1", "ascii", "cp1252"})


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str
    warnings: tuple[str, ...] = ()


def normalize_encoding(name: str) -> str | None:
    """The Python codec to decode a declared charset with, or ``None`` if unknown.

    GB2312 and GBK are decoded as their superset GB18030, Big5 as Big5-HKSCS, and Latin-1 or
    ASCII as Windows-1252, as browsers do, because publishers declare the small set and use
    the large one.
    """
    cleaned = name.strip().strip("\"'").lower()
    for candidate in (cleaned, cleaned.removeprefix("x-"), cleaned.replace("_", "-")):
        try:
            codec = codecs.lookup(candidate).name
        except LookupError:
            continue
        if codec in _GB:
            return "gb18030"
        if codec in _BIG5:
            return "big5hkscs"
        if codec in _LATIN1:
            return "cp1252"
        return codec
    return None


def decode_document(
    content: bytes, *, http_charset: str | None = None, override: str | None = None
) -> Decoded:
    """Text of a feed document, with the codec used and what was doubtful about it.

    Order: the operator's override; a BOM; UTF-16/32 by byte pattern; UTF-8 if the bytes are
    valid UTF-8 (text in other encodings practically never is); the declared charsets,
    multi-byte ones before single-byte ones (a declared ISO-8859-1 is usually a server
    default, a declared GB2312 is a decision); finally a GB18030-or-Big5 guess from the
    byte pairs.
    Raises ``LookupError`` for an override Python does not know.
    """
    if override:
        codec = normalize_encoding(override)
        if codec is None:
            raise LookupError(override)
        return _finish(content, codec, ())
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return _finish(content[len(bom) :], codec, ())
    for prefix, codec in _WIDE_PREFIXES:
        if content.startswith(prefix):
            return _finish(content, codec, ())
    try:
        return Decoded(_clean(content.decode("utf-8"), _has_illegal_utf8(content)), "utf-8")
    except UnicodeDecodeError:
        pass
    declared = _declared(content, http_charset)
    legacy = [c for c in declared if c not in _UNICODE]
    legacy.sort(key=lambda c: c == "cp1252")
    for codec in legacy:
        try:
            return Decoded(_clean(content.decode(codec)), codec)
        except UnicodeDecodeError:
            continue
    if "utf-8" in declared or not legacy:
        text = content.decode("utf-8", "replace")
        bad = text.count("\ufffd")
        if len(text) - len(content.decode("ascii", "ignore")) >= 11 * bad:
            return _finish(content, "utf-8", (f"{bad} byte(s) invalid in UTF-8 replaced",))
    if legacy:
        return _finish(content, legacy[0], (f"bytes invalid in declared {legacy[0]} replaced",))
    guess = _guess_chinese(content)
    note = f"charset {'invalid' if declared else 'not declared'}; decoded as {guess}"
    return _finish(content, guess, (note,))


def repair_xml_entities(text: str) -> str:
    """Escape bare ``&`` and turn HTML-only entities (``&nbsp;``) into character references.

    Both are common in Chinese feeds and each makes the document ill-formed, which sends
    feedparser to its slow fallback parser, where ``A&B`` comes out as ``A&B;``. Documents that
    declare their own entities are left alone.
    """
    if "&" not in text or "<!ENTITY" in text[:8192]:
        return text
    if "&#" in text:
        text = _BAD_CHAR_REF.sub("", text)  # references to control characters XML forbids
    return _AMPERSAND.sub(_escape_entity, text)


def _escape_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name is None:
        return "&amp;"
    value = html5_entities.get(name)
    if value is None:
        return "&amp;" + name
    return "".join(f"&#{ord(char)};" for char in value)


def _declared(content: bytes, http_charset: str | None) -> list[str]:
    found: list[str] = []
    match = _XML_ENCODING.match(content[:512])
    for name in (match.group(1).decode("ascii") if match else None, http_charset):
        codec = normalize_encoding(name) if name else None
        if codec and codec not in found:
            found.append(codec)
    return found


def _guess_chinese(content: bytes) -> str:
    """GB18030 or Big5 for undeclared non-UTF-8 bytes, from the second byte of each pair:
    Big5 uses 0x40-0x7E there for about two characters in five, GB2312 never does. Text
    where high bytes mostly stand alone (accented Latin) is Windows-1252."""
    pairs = _DOUBLE_BYTE.findall(content[:65536])
    low = sum(1 for pair in pairs if pair[1] < 0xA1)
    if not pairs or (len(pairs) - low) * 3 < len(pairs):
        return "cp1252"
    first, second = ("big5hkscs", "gb18030") if low * 6 > len(pairs) else ("gb18030", "big5hkscs")
    for codec in (first, second):
        try:
            content.decode(codec)
        except UnicodeDecodeError:
            continue
        return codec
    return "cp1252"  # high bytes that fit neither are more likely accented Latin


def _finish(content: bytes, codec: str, warnings: tuple[str, ...]) -> Decoded:
    text = content.decode(codec, "replace")
    if "\ufffd" in text and not warnings:
        warnings = (f"bytes invalid in {codec} replaced",)
    return Decoded(_clean(text), codec, warnings)


def _clean(text: str, illegal: bool = True) -> str:
    """Drop a BOM, leading whitespace before the prolog, and characters XML forbids; each of
    these would otherwise push feedparser from its XML parser to its slower, lossier one.
    ``illegal=False`` says that the text has no character XML forbids."""
    text = text.lstrip("\ufeff \t\r\n")
    return _ILLEGAL_XML_CHARS.sub("", text) if illegal else text


_C0_BYTES = bytes(range(0x20)).translate(None, b"\t\n\r")


def _has_illegal_utf8(content: bytes) -> bool:
    """Whether valid UTF-8 ``content`` holds a character ``_ILLEGAL_XML_CHARS`` finds: a C0
    byte other than tab and line ends (no multi-byte sequence holds a byte below 0x80), or
    U+FFFE or U+FFFF (EF always starts a sequence). Bytes are scanned several times faster
    than the decoded text is by a pattern."""
    if len(content.translate(None, _C0_BYTES)) != len(content):
        return True
    return b"\xef\xbf\xbe" in content or b"\xef\xbf\xbf" in content
