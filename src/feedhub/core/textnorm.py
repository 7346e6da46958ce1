"""Text, titles and links reduced to the form in which two reposts of one article compare equal.

Reposting sites change what a reader barely notices and a byte comparison always does: full-width
digits and punctuation, Traditional characters, a ``【临沂】`` or ``[视频]`` tag before the title, a
`` - 琅琊新闻网`` or ``_新浪网`` after it, a ``来源：… 编辑：…`` line, a share widget, a reporter's
credit in brackets, ``http`` for ``https`` and ``m.`` for ``www.`` in the link. Everything here
undoes one of those, and nothing here decides whether two texts are the same story (``dedupe``
does): a rule that removed real content would hurt every comparison alike, so each pattern is
narrow and bounded in length.

The folded forms are for matching only; they are never shown to readers.
"""

from __future__ import annotations

import html as htmllib
import re
import unicodedata
import zlib
from functools import lru_cache
from urllib.parse import urlsplit

import opencc

from feedhub.core.normalize import canonical_parts, canonical_url

__all__ = [
    "casefold",
    "clean_plain_text",
    "clean_text",
    "clean_title",
    "fact_hash",
    "fact_tokens",
    "fold",
    "html_to_text",
    "match_title",
    "nfkc",
    "title_key",
    "to_simplified",
    "url_key",
]

# --- characters ------------------------------------------------------------------------------

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# Full-width forms common in Chinese text, replaced as NFKC would but without its per-character
# cost (NFKC of a whole 2 KB article takes about 0.2 ms; these replacements take microseconds).
_FULL_WIDTH = (*((chr(ord(half) + 0xFEE0), half) for half in "(),.:;?!%"), ("\u3000", " "))
# Characters NFKC leaves alone and that never combine with a neighbour: ASCII, CJK ideographs,
# most CJK punctuation, quotes and dashes. Runs of other characters (with the character before
# them, which a combining mark may attach to) are normalized one run at a time.
_NFKC_SAFE = (
    "\x00-\x7f\u2010\u2012-\u2016\u2018-\u2023\u2027\u3001-\u3029\u3030-\u3035\u303b-\u303f"
    "\u3400-\u4dbf\u4e00-\u9fff"
)
_NFKC_RUN = re.compile(f".?[^{_NFKC_SAFE}]+", re.DOTALL)


# t2s changes a text only where it holds a dictionary key that converts to something else, and
# every such key holds a character that converts by itself, or one of these (回覆 -> 回复 while
# 回 and 覆 stay): true of OpenCC's dictionaries of the version named, all of whose characters
# lie in the ranges below. tests/test_parse_speed.py checks all three against the installed ones.
_T2S_CHECKED = "1.4.2"
_T2S_PHRASE_ONLY = "哩坏沈甦瞭藉衹覆"
_T2S_RANGES = ((0x2E80, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))
_CAPITALS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    # Created once: loading the dictionaries takes milliseconds, converting takes microseconds.
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _changers() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]] | None:
    """Patterns that find every character which may make ``to_simplified`` change a text, and
    every one which may make ``fold`` change an NFKC text (with and without ASCII capitals), so
    that a text without any is left as it is (most Simplified text: converting costs 50 ns a
    character, searching 5). None for an OpenCC not checked. Built once, in about 0.1 s.

    Non-BMP characters and lone surrogates always count: ``re`` tests a class of BMP characters
    in one step, but any character beyond the BMP in it one by one."""
    if getattr(opencc, "__version__", None) != _T2S_CHECKED:
        return None
    every = [chr(c) for low, high in _T2S_RANGES for c in range(low, high + 1)]
    converted = str(_converter().convert("\n".join(every))).split("\n")
    if len(converted) != len(every):
        return None
    t2s = [c for c, out in zip(every, converted, strict=True) if c != out and c <= "\uffff"]
    t2s += [*_T2S_PHRASE_ONLY, *map(chr, range(0xF900, 0xFB00))]  # normalized before converting
    cased = _cased()
    always = "\ud800-\udfff\U00010000-\U0010ffff"
    fold_class = _char_class([*t2s, *cased, *_INVISIBLE.pattern[1:-1]])
    uncapital = _char_class(
        [*t2s, *(c for c in cased if c not in _CAPITALS), *_INVISIBLE.pattern[1:-1]]
    )
    return (
        re.compile(f"[{_char_class(t2s)}{always}]"),
        re.compile(f"[{fold_class}{always}]"),
        re.compile(f"[{uncapital}{always}]"),
    )


@lru_cache(maxsize=1)
def _cased() -> list[str]:
    """The characters of the BMP that ``str.casefold`` changes."""
    return [c for c in map(chr, range(0x10000)) if c.casefold() != c]


@lru_cache(maxsize=1)
def _casefolds() -> re.Pattern[str]:
    # Beyond the BMP every character counts, as in ``_changers``.
    return re.compile(f"[{_char_class(_cased())}\U00010000-\U0010ffff]")


def casefold(text: str) -> str:
    """``text.casefold()``, which costs about 15 ns a character even where nothing changes;
    a search for a character that it changes costs a third of that."""
    return text.casefold() if _casefolds().search(text) else text


def _char_class(chars: list[str]) -> str:
    """The inside of a regex class of exactly these characters, as ranges."""
    codes = sorted(set(map(ord, chars)))
    parts = []
    start = 0
    for n in range(1, len(codes) + 1):
        if n == len(codes) or codes[n] != codes[n - 1] + 1:
            low, high = re.escape(chr(codes[start])), re.escape(chr(codes[n - 1]))
            parts.append(low if start == n - 1 else f"{low}-{high}")
            start = n
    return "".join(parts)


def to_simplified(text: str) -> str:
    """Traditional characters as Simplified ones (OpenCC ``t2s``, phrase-aware)."""
    if not _HAS_CJK.search(text):
        return text
    changers = _changers()
    if changers is not None and not changers[0].search(text):
        return text
    return str(_converter().convert(text))


def nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, in a few microseconds for Chinese text instead
    of about 0.1 ms per KB: common full-width forms are replaced by what NFKC makes of them,
    then only runs of characters outside the ones NFKC leaves alone are normalized. Equal
    because a character is replaced by its compatibility decomposition, and the characters
    left alone are starters that no composition takes as its second character."""
    for full, half in _FULL_WIDTH:
        if full in text:
            text = text.replace(full, half)
    if not unicodedata.is_normalized("NFKC", text):
        text = _NFKC_RUN.sub(_nfkc, text)
    return text


def fold(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation become half-width), case folded,
    Simplified, invisible characters dropped."""
    text = nfkc(text)
    changers = _changers()
    if changers is not None:
        # Case folding and conversion are done character by character; most text has nothing
        # for either to change, or only ASCII capitals.
        found = changers[1].search(text)
        if found is None:
            return text
        if found.group() in _CAPITALS and not changers[2].search(text, found.end()):
            return text.casefold()
    if _INVISIBLE.search(text):
        text = _INVISIBLE.sub("", text)
    return to_simplified(text.casefold())


def _nfkc(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group())


# --- HTML ------------------------------------------------------------------------------------

_BLOCK_TAGS = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|tr|table|blockquote|section|article|figure|"
    r"figcaption|header|footer|hr|pre)\b[^>]*>",
    re.IGNORECASE,
)
_DROP_ELEMENTS = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z!][^<>]{0,2000}>")
_LOOKS_LIKE_HTML = re.compile(r"</?[a-zA-Z][^<>]{0,2000}>")


def html_to_text(value: str) -> str:
    """Text of an HTML fragment with block boundaries kept as line breaks, because boilerplate
    (source and editor lines, share widgets) is recognised line by line. Plain text passes."""
    if not _LOOKS_LIKE_HTML.search(value):
        return htmllib.unescape(value) if "&" in value else value
    value = _DROP_ELEMENTS.sub(" ", value)
    value = _BLOCK_TAGS.sub("\n", value)
    value = _TAG.sub("", value)
    return htmllib.unescape(value)


# --- boilerplate in bodies -------------------------------------------------------------------
# All patterns run on folded text: half-width punctuation, Simplified characters, lower case.

_CREDIT_WORDS = (
    r"责任编辑|责编|编辑|主编|编审|审核|审校|审签|校对|监制|统筹|出品|制作|记者|通讯员|作者|撰文|"
    r"摄影|摄像|图片|图|视频|来源|本文来源|文章来源|稿件来源|信息来源|图片来源|发布时间|发布日期|"
    r"发稿时间|时间|原标题|原文标题|转载|转自|翻译|编译|实习生|实习编辑|值班编辑|新媒体编辑|阅读|浏览"
)
# ``\d\d{3}`` here and ``\d\d*`` in ``_NUMBER`` match what ``\d{4}`` and ``\d+`` would; a
# pattern that opens with a plain character class lets ``re`` skip to candidate positions,
# about twice as fast.
_DATE = r"\d\d{3}[-/.]\d{1,2}[-/.]\d{1,2}"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?"
_DATETIME = rf"{_DATE}(?:\s*{_CLOCK})?"
# A credit line: the keyword, a colon, then at most a short line. Used on real lines only.
_CREDIT_LINE = re.compile(
    rf"^[\s\[(【〔<]*(?:{_CREDIT_WORDS})\s*[:|]\s*.{{0,80}}$|^\s*{_DATETIME}\s*(?:来源.{{0,40}})?$",
)
# The same inside running text (feeds that collapse all whitespace): keyword, colon and one
# value without spaces, optionally followed by a date and time.
_CREDIT_INLINE = re.compile(
    rf"(?:{_CREDIT_WORDS})\s*:\s*(?:{_DATETIME}|[^\s。!?;,，、:]{{1,24}}(?:\s*{_DATETIME})?)",
)
_CREDIT_BRACKETS = re.compile(
    r"[(\[【〔](?:\s*(?:新华社|人民网|央视网|中新网)?\s*)"
    r"(?:记者|通讯员|实习生|编辑|责任编辑|来源|作者|摄影|图|图片|文|图/文|文/图|视频)"
    r"[^()\[\]【】〔〕]{0,40}[)\]】〕]"
)
_NAME = rf"[{_CJK}]{{2,3}}(?=[\s,.;:)\]]|$)"  # a Chinese name, then a space or punctuation
# "临沂日报讯 记者 张伟 通讯员 王芳": a dateline credit without a colon (names after a space).
_REPORTER = re.compile(
    rf"(?:[{_CJK}]{{2,8}}讯\s*)?记者\s+{_NAME}(?:\s*(?:通讯员|实习生|记者)\s*{_NAME})*"
)
_REPORTER_NEEDS = re.compile(r"记者\s")  # in every match of _REPORTER; found far faster
_STAMP = re.compile(rf"{_DATE}\s*{_CLOCK}")  # a date with a clock time is metadata, not a fact
_WIDGET = re.compile(
    r"(?:分享到|分享至|分享)\s*:?\s*(?:(?:微信好友|微信朋友圈|朋友圈|微信|新浪微博|腾讯微博|微博|"
    r"qq空间|qq好友|qq|豆瓣|人仁网|人人网|百度贴吧|facebook|twitter|linkedin|whatsapp|更多|"
    r"复制链接|一键分享)[\s、,|/·]*)+"
    r"|扫一扫[^。\n]{0,24}|(?:用|打开)微信扫[^。\n]{0,24}|微信扫[^。\n]{0,24}"
    r"|【(?:纠错|打印|关闭|收藏|字号|大|中|小|返回顶部|我要评论|关闭窗口)】"
    r"|点击(?:进入|查看|阅读)(?:专题|全文|原文|更多)[^\s。\n]{0,30}"
    r"|(?:转载|转发)请注明(?:出处|来源)[^。\n]{0,30}[。]?"
    r"|(?:未经授权|未经许可)[,，]?(?:严禁|禁止|不得)(?:转载|复制)[^。\n]{0,30}[。]?"
    r"|(?:版权声明|免责声明|声明)\s*:[^\n]{0,120}"
    r"|(?:下载|打开)[^。\n\s]{0,10}(?:app|客户端)[^。\n]{0,20}"
    r"|(?:share|share this article|share on|tweet|email|print)(?:\s+(?:on\s+)?"
    r"(?:facebook|twitter|whatsapp|linkedin|email|reddit|pinterest))+"
    r"|\((?:additional\s+)?(?:reporting|writing|editing|compiled)\s+by\s+[^()]{1,200}\)"
)
# Literal strings at least one of which every _WIDGET match contains: checking for them with
# ``in`` is far faster than letting the regex scan text that has no widget at all.
_WIDGET_TRIGGERS = (
    "分享", "扫", "【", "点击", "转载", "转发", "未经", "声明", "app", "客户端", "share", "tweet",
    "email", "print", " by ",
)  # fmt: skip
_EN_CREDIT_LINE = re.compile(
    r"^\s*(?:by [a-z.'’ -]{3,40}(?:,.{0,40})?$|(?:additional\s+)?reporting by|writing by|"
    r"editing by|compiled by|our standards:|read more:|related:|follow us on|sign up for|"
    r"click here|copyright|©|all rights reserved)"
    r".{0,300}$"
)
_CREDIT_LINES = re.compile(f"(?:{_CREDIT_LINE.pattern})|(?:{_EN_CREDIT_LINE.pattern})")
_WIDGET_TRIGGER = re.compile("|".join(map(re.escape, _WIDGET_TRIGGERS)))
# A short tag in brackets opening a body: "【临沂】", "[视频]", "(独家)".
_LEAD_TAG = re.compile(r"^\s*(?:[\[【〔(](?:[^\[\]【】〔〕()]{1,8})[\]】〕)]\s*)+")
_EN_CREDIT_STARTS = frozenset("abceforsw©")  # first characters of _EN_CREDIT_LINE's phrases


def _may_be_credit(line: str) -> bool:
    """False for a stripped line ``_CREDIT_LINES`` cannot match, found far faster than by it:
    a Chinese credit has a colon or bar, a dated one starts with a digit (``\\d``, which is
    ``str.isdecimal``), an English one with the first letter of one of its phrases."""
    return ":" in line or "|" in line or line[0].isdecimal() or line[0] in _EN_CREDIT_STARTS


def clean_text(text: str) -> str:
    """Folded body text without the boilerplate that reposting adds; lines kept."""
    return clean_plain_text(html_to_text(text))


def clean_plain_text(text: str) -> str:
    """``clean_text`` of what ``html_to_text`` already made of it."""
    text = fold(text)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not (_may_be_credit(stripped) and _CREDIT_LINES.match(stripped)):
            lines.append(stripped)
    text = "\n".join(lines)
    # Some patterns run only on text that has what every match of them needs: a scan by
    # ``in`` (or one for a few literals) costs far less than one by the pattern.
    if _WIDGET_TRIGGER.search(text):
        text = _WIDGET.sub(" ", text)
    text = _CREDIT_BRACKETS.sub(" ", text)
    if ":" in text:
        text = _CREDIT_INLINE.sub(" ", text)
    if _REPORTER_NEEDS.search(text):
        text = _REPORTER.sub(" ", text)
    if ":" in text:
        text = _STAMP.sub(" ", text)
    return _LEAD_TAG.sub("", text).strip()


# --- titles ----------------------------------------------------------------------------------

# "【临沂】", "[视频]", "(图)", "〔独家〕" before the title; "独家|" and "视频:" as well.
_TITLE_PREFIX = re.compile(
    r"^\s*(?:[\[【〔(](?:[^\[\]【】〔〕()]{1,10})[\]】〕)]\s*"
    r"|update\s*\d*\s*-\s*"
    r"|(?:独家|原创|快讯|视频|图文|组图|直播|突发|最新|热点|推荐|转载|更新|breaking|exclusive|"
    r"update|updated|video|watch|live|opinion|analysis)\s*[:|]\s*)"
)
_SITE_PREFIX = re.compile(r"^([^\s|]{1,8})\s*\|\s*(.+)$")
# "(图)", "[视频]", "(组图)" and "(update 2)" anywhere.
_TITLE_TAGS = re.compile(
    r"[(\[【〔](?:图|组图|多图|视频|高清|图文|附视频|附图|更新|独家|原创|快讯|直播|转载|"
    r"update\s*\d*|updated|video|photos?|live)[)\]】〕]"
)
# " - 琅琊新闻网", "_新浪网", "|澎湃新闻", " — Reuters": a separator and a short name at the end.
_TITLE_SUFFIX = re.compile(
    r"(?:\s+[-–—]+\s+|\s*[_|]+\s*|\s*[–—]{1,2}\s*)"
    r"(?:[^\s\-–—_|]{1,14}|[a-z0-9.&' ]{1,32})\s*$"
)
_NON_WORD = re.compile(r"(?:(?!(?<=\d)\.(?=\d))[\W_])+")  # decimal points stay
_SPACE_NEAR_CJK = re.compile(f"(?<=[{_CJK}]) | (?=[{_CJK}])")


def clean_title(title: str) -> str:
    """Folded title without the tags and site names that reposting adds, for display in
    explanations and for fact extraction."""
    title = fold(html_to_text(title)).strip()
    for _ in range(3):
        stripped = _TITLE_PREFIX.sub("", title)
        if stripped == title or not stripped.strip():
            break
        title = stripped
    title = _TITLE_TAGS.sub(" ", title)
    for _ in range(3):
        match = _TITLE_SUFFIX.search(title)
        # Keep at least most of the title: a "suffix" half the length is part of the title.
        if not match or match.start() < max(4, len(title) // 2):
            break
        title = title[: match.start()]
    # "中国军网 | 标题": a site name before a bar, when what follows is clearly the title.
    site = _SITE_PREFIX.match(title)
    if site and len(site.group(2)) >= max(6, 2 * len(site.group(1))):
        title = site.group(2)
    return " ".join(title.split())


def match_title(title: str) -> str:
    """``clean_title`` without punctuation and with spaces only between words: the form two
    titles are compared in ("Storm hits coast" and "storm hits coast!" are equal)."""
    return title_key(clean_title(title))


def title_key(cleaned: str) -> str:
    """``match_title`` of a title that already went through ``clean_title``."""
    return _SPACE_NEAR_CJK.sub("", _NON_WORD.sub(" ", cleaned).strip())


# --- facts -----------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d\d*(?:,\d{3})*(?:\.\d+)?")
# _ENDS_WITH_NUMBER and _PLACE say what _ends_with_number and _places find, faster.
_ENDS_WITH_NUMBER = re.compile(r"\d[\s.…。]*$")
_PLACE = re.compile(f"[{_CJK}]{{2}}(?:省|市|县|区|州|镇|乡|盟|旗)")
_PLACE_SUFFIX = re.compile("[省市县区州镇乡盟旗]")
_CJK_PAIR = re.compile(f"[{_CJK}]{{2}}")
_NUMBER_TAIL = frozenset(".…。")
_PLACE_STOP = frozenset(
    {"城市", "超市", "股市", "上市", "楼市", "都市", "车市", "债市", "街区", "社区", "园区", "景区",
     "小区", "城区", "市区", "地区", "辖区", "片区", "专区", "新区", "灾区", "郊区", "山区", "全省",
     "全市", "全县", "全区", "本市", "本省", "外省", "各省", "各市", "我省", "我市", "我县", "我区"}
)  # fmt: skip


def fact_tokens(text: str) -> set[str]:
    """Numbers and place names of a folded text: what differs between two stories written from
    one template (another city, another day, other figures) while everything else is equal.

    Numbers lose thousands separators, leading zeros and trailing decimal zeros, so "03" and
    "3", "1,200" and "1200", "2.50" and "2.5" agree. A place is two characters before 省, 市,
    县, 区, ... (a crude rule, but the same text always yields the same tokens, which is all a
    comparison between copies needs)."""
    facts: set[str] = set()
    numbers = _NUMBER.findall(text)
    if numbers and _ends_with_number(text):
        numbers.pop()  # a truncated text may end inside a number: "192.1……" of "192.168.1.1"
    for raw in numbers:
        number = raw.replace(",", "")
        if "." in number:
            number = number.rstrip("0").rstrip(".")
        facts.add("#" + (number.lstrip("0") or "0"))
    for place in _places(text):
        if place[1:] not in _PLACE_STOP and place[:2] not in _PLACE_STOP:
            facts.add("@" + place)
    return facts


def _ends_with_number(text: str) -> bool:
    """``_ENDS_WITH_NUMBER.search(text)``, looking at the end only (a search tries every
    position). ``\\s`` and ``\\d`` of ``re`` are ``str.isspace`` and ``str.isdecimal``."""
    end = len(text)
    while end and (text[end - 1] in _NUMBER_TAIL or text[end - 1].isspace()):
        end -= 1
    return end > 0 and text[end - 1].isdecimal()


def _places(text: str) -> list[str]:
    """``_PLACE.findall(text)``, found from the suffix characters, which are rare, instead of
    from every pair of CJK characters: the same leftmost, non-overlapping matches."""
    found: list[str] = []
    pos = 0
    for match in _PLACE_SUFFIX.finditer(text, 2):
        start = match.start() - 2
        if start >= pos and _CJK_PAIR.match(text, start, start + 2):
            found.append(text[start : start + 3])
            pos = start + 3
    return found


def fact_hash(token: str) -> int:
    """A hash of a fact token that is the same in every process (storable)."""
    return zlib.crc32(token.encode("utf-8"))


# --- links -----------------------------------------------------------------------------------

_MOBILE_LABELS = frozenset({"www", "m", "wap", "3g", "4g", "mobile", "touch", "amp", "h5"})


def url_key(url: str | None) -> str:
    """The part of a link that names the article: no scheme, no ``www.``/``m.``/``wap.``/``3g.``
    host label, no tracking parameters (``canonical_url``), no trailing slash, query parameters
    sorted, fragment dropped unless it is a client-side route (``#!``, ``#/``).

    Returns "" for what cannot name one article: non-http(s) links and a site's front page (no
    path, no query), which some feeds give as every item's link.
    """
    if not url or not url.strip():
        return ""
    plain = canonical_parts(url)
    if plain is not None:  # what urlsplit would make of canonical_url(url)
        host, path, query, fragment = plain[1], plain[2], plain[3], plain[4]
        port = None
    else:
        try:
            parts = urlsplit(canonical_url(url))
        except ValueError:
            return ""
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return ""
        host, path, query, fragment, port = (
            parts.hostname, parts.path, parts.query, parts.fragment, parts.port,
        )  # fmt: skip
    labels = host.split(".")
    if len(labels) > 2 and labels[0] in _MOBILE_LABELS:
        labels = labels[1:]
    host = ".".join(labels)
    if port is not None and port not in (80, 443):
        host += f":{port}"
    path = path.rstrip("/")
    query = "&".join(sorted(p for p in query.split("&") if p))
    fragment = fragment if fragment.startswith(("!", "/")) else ""
    if not path and not query and not fragment:
        return ""
    key = host + path
    if query:
        key += "?" + query
    if fragment:
        key += "#" + fragment
    return key
