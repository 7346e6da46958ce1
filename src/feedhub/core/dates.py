"""Feed dates, read the way Chinese publishers write them.

feedparser reads a time without a zone as UTC (eight hours off for China), turns
``2025/11/25 08:00`` and ``2025年11月25日`` into the first of the month, and reads ``CST`` as
US Central. So feedhub parses the raw strings itself: a time without a zone is local time of
the source, and ``CST`` in a Chinese context is China Standard Time (UTC+8).
Anything not recognised gives ``None`` rather than a guess, so storage falls back to the
first-seen time instead of filing the story under another day.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["default_timezone_for", "parse_date", "zone"]

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

# Abbreviations seen in feeds. CST is decided by context (see _zone_token).
_NAMED_ZONES = {
    "Z": 0.0, "UT": 0.0, "UTC": 0.0, "GMT": 0.0, "WET": 0.0,
    "EST": -5.0, "EDT": -4.0, "CDT": -5.0, "MST": -7.0, "MDT": -6.0, "PST": -8.0, "PDT": -7.0,
    "AKST": -9.0, "AKDT": -8.0, "HST": -10.0, "AST": -4.0, "ADT": -3.0,
    "BST": 1.0, "CET": 1.0, "CEST": 2.0, "MET": 1.0, "MEST": 2.0, "WEST": 1.0,
    "EET": 2.0, "EEST": 3.0, "MSK": 3.0, "IST": 5.5,
    "ICT": 7.0, "WIB": 7.0, "HKT": 8.0, "SGT": 8.0, "MYT": 8.0, "PHT": 8.0, "AWST": 8.0,
    "JST": 9.0, "KST": 9.0, "ACST": 9.5, "AEST": 10.0, "AEDT": 11.0, "NZST": 12.0, "NZDT": 13.0,
}  # fmt: skip

_CHINESE_ZONES = frozenset(
    {
        "Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "Asia/Urumqi",
        "Asia/Taipei", "Asia/Hong_Kong", "Asia/Macau", "Asia/Macao", "PRC", "ROC", "Hongkong",
    }
)  # fmt: skip

# Full-width digits and punctuation that Chinese CMSs sometimes emit.
_FULLWIDTH = str.maketrans("０１２３４５６７８９：－／．　", "0123456789:-/. ")

_ZONE = (
    r"(?P<z>Z|[+-]\d{1,2}(?::?\d{2})?"
    r"|(?:GMT|UTC|UT)\s*[+-]\s*\d{1,2}(?::?\d{2})?|[A-Za-z]{1,5})"
)

# ISO 8601 and its Chinese and slashed relatives: 2025-11-25T08:00:00+08:00, 2025/11/25 08:00,
# 2025.11.25, 2025年11月25日 08时00分.
_YMD = re.compile(
    r"(?P<y>\d{4})\s*(?:[-/.]|年)\s*(?P<m>\d{1,2})\s*(?:[-/.]|月)\s*(?P<d>\d{1,2})\s*日?"
    r"(?:(?:T|\s*)(?P<H>\d{1,2})\s*(?::|时|時|点|點)\s*(?P<M>\d{1,2})"
    r"(?:\s*(?::|分)\s*(?P<S>\d{1,2})(?:[.,](?P<f>\d+))?\s*秒?|\s*分)?"
    r"(?:\s*(?P<ampm>[AP]\.?M\.?))?)?"
    r"\s*" + _ZONE + r"?$",
    re.IGNORECASE,
)

# RFC 822 / 1123 and their common slips: "Tue, 25 Nov 2025 08:00:00 +0800", "25 Nov 25 8:00 GMT".
_RFC822 = re.compile(
    r"(?:[A-Za-z]+\.?,?\s*)?(?P<d>\d{1,2})[\s-]+(?P<mon>[A-Za-z]{3,9})\.?,?[\s-]+(?P<y>\d{2,4}),?"
    r"(?:\s+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"\s*" + _ZONE + r"?$",
    re.IGNORECASE,
)

# Month first: Java's Date.toString() "Tue Nov 25 08:00:00 CST 2025", asctime, and
# "Nov 25, 2025 8:00 PM".
_MDY = re.compile(
    r"(?:[A-Za-z]+\.?,?\s+)?(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+"
    r"(?:(?P<y>\d{4}),?\s*)?"
    r"(?:(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?\s*(?P<ampm>[AP]\.?M\.?)?)?"
    r"\s*" + _ZONE + r"?\s*(?P<y2>\d{4})?$",
    re.IGNORECASE,
)

_COMMENT = re.compile(r"\s*\([^()]*\)\s*$")  # "+0800 (CST)"


def default_timezone_for(language: str) -> str:
    """The zone a source's zone-less times are read in, from its language tag.

    Chinese without a region is taken as the mainland; other languages get UTC because there is
    no safe guess for them and the operator can set ``timezone`` per source.
    """
    parts = [p for p in re.split(r"[-_]", language.strip().lower()) if p]
    if not parts or parts[0] != "zh":
        return "UTC"
    regions = {p for p in parts[1:] if len(p) == 2}
    if "tw" in regions:
        return "Asia/Taipei"
    if "hk" in regions:
        return "Asia/Hong_Kong"
    if "mo" in regions:
        return "Asia/Macau"
    if "sg" in regions:
        return "Asia/Singapore"
    if "hant" in parts[1:] and not regions:
        return "Asia/Taipei"
    return "Asia/Shanghai"


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """A ``ZoneInfo`` by name, cached because feeds ask for the same few zones all day."""
    return ZoneInfo(name)


def parse_date(value: str, tz: tzinfo, *, lang: str | None = None) -> datetime | None:
    """Read one feed date string; aware UTC, or ``None`` when it cannot be read safely.

    ``tz`` is the source's local zone, used when the string carries no zone. ``lang`` is the
    feed's language: with a Chinese language (or a UTC+8 local zone) ``CST`` means UTC+8.
    """
    if not value.isascii():  # the full-width forms are not ASCII
        value = value.translate(_FULLWIDTH)
    text = " ".join(value.split())  # runs of whitespace as one space, none at either end
    if "(" in text:
        text = _COMMENT.sub("", text)
    if not text or len(text) > 64:
        return None
    chinese = _is_chinese_context(tz, lang)
    for pattern in (_YMD, _RFC822, _MDY):
        match = pattern.match(text)
        if match:
            return _build(match, tz, chinese)
    return None


def _is_chinese_context(tz: tzinfo, lang: str | None) -> bool:
    if lang and lang.strip().lower()[:2] == "zh":
        return True
    if getattr(tz, "key", None) in _CHINESE_ZONES:
        return True
    return tz.utcoffset(datetime(2020, 1, 1)) == timedelta(hours=8)


def _build(match: re.Match[str], tz: tzinfo, chinese: bool) -> datetime | None:
    groups = match.groupdict()
    try:
        year = _year(groups.get("y") or groups.get("y2"))
        month = int(groups["m"]) if groups.get("m") else _MONTHS.get(groups["mon"].lower(), 0)
        day = int(groups["d"])
        hour = int(groups["H"]) if groups.get("H") else 0
        minute = int(groups["M"]) if groups.get("M") else 0
        second = int(groups["S"]) if groups.get("S") else 0
    except (TypeError, ValueError):
        return None
    if year is None or not month:
        return None
    ampm = (groups.get("ampm") or "").replace(".", "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    if second == 60:  # a leap second; keep the date right rather than reject it
        second = 59
    micro = int((groups.get("f") or "0")[:6].ljust(6, "0"))
    zone_info = _zone_token(groups.get("z"), tz, chinese)
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone_info)
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _year(raw: str | None) -> int | None:
    if raw is None:
        return None
    year = int(raw)
    if len(raw) == 2:
        return year + (2000 if year < 50 else 1900)
    if len(raw) != 4:
        return None
    return year


@lru_cache(maxsize=256)  # a feed names the same zone in every date
def _zone_token(token: str | None, tz: tzinfo, chinese: bool) -> tzinfo:
    """The zone a date string names; the source's own zone when it names none we know."""
    if not token:
        return tz
    upper = token.upper().replace(" ", "")
    if upper == "CST":
        return _fixed(8.0 if chinese else -6.0)
    if upper in _NAMED_ZONES:
        return _fixed(_NAMED_ZONES[upper])
    for prefix in ("GMT", "UTC", "UT"):
        if upper.startswith(prefix) and upper[len(prefix) : len(prefix) + 1] in ("+", "-"):
            upper = upper[len(prefix) :]
            break
    if upper[:1] in ("+", "-"):
        sign = -1 if upper[0] == "-" else 1
        digits = upper[1:].replace(":", "")
        if len(digits) <= 2:
            hours, minutes = int(digits), 0
        else:
            hours, minutes = int(digits[:-2]), int(digits[-2:])
        if hours > 14 or minutes > 59:
            return tz
        return _fixed(sign * (hours + minutes / 60))
    return tz


@lru_cache(maxsize=64)
def _fixed(hours: float) -> tzinfo:
    if hours == 0:
        return UTC
    return timezone(timedelta(minutes=round(hours * 60)))
