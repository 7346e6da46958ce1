"""Typed settings: the shape of ``config/feedhub.yaml``.

Loading, line numbers and reload live in ``config.py``; these models only say what is valid.
Every model forbids unknown keys, so a typo is an error rather than a silently ignored line.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_ID = re.compile(r"^[A-Za-z0-9\u3400-\u9fff][A-Za-z0-9_.\-\u3400-\u9fff]*$")


def _parse_duration(value: Any) -> Any:
    """Seconds as a number, or a string such as ``90``, ``15m``, ``2h``, ``1d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 2h or 1d")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 15m, 2h, 1d)")
        return float(m.group(1)) * _UNITS[m.group(2)]
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


Duration = Annotated[float, BeforeValidator(_parse_duration), AfterValidator(_positive)]


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{value!r} is not a valid id (letters, digits, Chinese characters, '_', '-', '.')"
        )
    return value


Ident = Annotated[str, AfterValidator(_check_id)]


def _check_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.strip()


FeedURL = Annotated[str, AfterValidator(_check_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Model):
    title: str = "feedhub"
    description: str = ""
    base_url: Annotated[str, AfterValidator(_check_url)] = "http://127.0.0.1:8080/"
    language: str = "zh-CN"
    timezone: str | None = Field(
        default=None,
        description="Zone for feed times written without one; default from language "
        "(Asia/Shanghai for zh, Asia/Taipei for zh-TW, Asia/Hong_Kong for zh-HK, else UTC).",
    )


class StorageSettings(_Model):
    url: str = Field(
        default="sqlite:///data/feedhub.db",
        description="sqlite:///relative/path.db, sqlite:////absolute/path.db or "
        "postgresql://user:pass@host/db. FEEDHUB_STORAGE_URL overrides.",
    )
    keep_fetch_log: Duration = Field(
        default=30 * 86400.0,
        description="How long fetch-log lines are kept (the worker prunes older ones hourly; "
        "per-source fetch counts are kept apart and never pruned).",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"unsupported database {scheme!r}: use sqlite:/// or postgresql://")
        return value


def _check_allow_entry(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.\-*]+$", value):
            raise ValueError(f"{value!r} is neither a host name nor an IP network") from None
    return value


class FetchSettings(_Model):
    concurrency: int = Field(default=16, ge=1, le=512, description="Downloads at once, in all.")
    per_host: int = Field(default=2, ge=1, le=64, description="Downloads at once per host.")
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 30.0
    total_timeout: Duration = 60.0
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    user_agent: str | None = Field(
        default=None, description="Default: feedhub/<version> (+<site.base_url>)"
    )
    parse_processes: int = Field(
        default=2,
        ge=0,
        le=32,
        description="Worker processes that parse feeds during big polls (0: parse in threads).",
    )
    allow_private_networks: bool = Field(
        default=False,
        description="Allow feeds on private, loopback and link-local addresses.",
    )
    allowlist: tuple[Annotated[str, AfterValidator(_check_allow_entry)], ...] = Field(
        default=(),
        description="Host names or IP networks allowed even when private (e.g. 10.0.0.0/8).",
    )


class ScheduleSettings(_Model):
    default_interval: Duration = 1800.0
    min_interval: Duration = 300.0
    max_interval: Duration = 86400.0
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Random spread, as a fraction.")
    error_backoff: Duration = Field(default=600.0, description="First delay after an error.")
    max_error_backoff: Duration = 86400.0
    tick: Duration = Field(
        default=30.0, description="How often the scheduler looks for due sources."
    )
    lease: Duration = Field(default=300.0, description="How long a claimed poll may take.")

    @model_validator(mode="after")
    def _bounds(self) -> ScheduleSettings:
        if self.min_interval > self.max_interval:
            raise ValueError("min_interval is greater than max_interval")
        return self


class WebSettings(_Model):
    host: str = Field(default="127.0.0.1", description="Listen address; --host overrides.")
    port: int = Field(default=8080, ge=1, le=65535, description="Listen port; --port overrides.")
    cache_max_age: Duration = Field(
        default=60.0, description="Cache-Control max-age of feeds and pages."
    )
    feed_limit: int = Field(default=50, ge=1, le=200, description="Entries per feed by default.")
    serve_demo_feeds: bool = Field(
        default=False, description="Serve the bundled demo feeds at /demo/feeds/ (demo config)."
    )


class StorySettings(_Model):
    """When items from different sources count as one story (see README, "Stories")."""

    window: Duration = Field(
        default=3 * 86400.0, description="Items further apart in published time never merge."
    )
    text_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Text overlap (Jaccard) that merges with like titles."
    )
    text_alone_threshold: float = Field(
        default=0.9, ge=0, le=1, description="Text overlap that merges whatever the titles say."
    )
    title_threshold: float = Field(
        default=0.8, ge=0, le=1, description="Title similarity that, with some text, merges."
    )
    same_source_threshold: float = Field(
        default=0.9, ge=0, le=1, description="Text overlap needed between one source's items."
    )
    fact_conflict_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of numbers/dates/places one side lacks that keeps two items apart.",
    )


def _keyword_map(value: Any) -> Any:
    """Keywords as a list (each weighs 1) or as a mapping of keyword to weight."""
    if isinstance(value, list | tuple):
        return {str(k): 1.0 for k in value}
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]


class SectionRule(_Model):
    """Evidence that an item belongs to the section (see README, "Sections")."""

    keywords: Annotated[dict[str, float], BeforeValidator(_keyword_map)] = Field(
        default_factory=dict,
        description="Words or phrases in the title or text: a list (weight 1 each) or a "
        "mapping of keyword to weight.",
    )
    include: tuple[Regex, ...] = Field(
        default=(), description="Regexes searched in title and text; a match votes `weight`."
    )
    exclude: tuple[Regex, ...] = Field(
        default=(), description="Regexes that, when they match, keep items out of the section."
    )
    url_patterns: tuple[str, ...] = Field(
        default=(), description="Substrings of the article URL's host and path, e.g. /caijing/."
    )
    feed_categories: tuple[str, ...] = Field(
        default=(), description="The feed's own <category> values that mean this section."
    )
    force: bool = Field(
        default=False, description="A match files the item here outright instead of voting."
    )
    weight: float = Field(default=1.0, description="Vote of a regex, URL or category match.")


def _rule_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class RelatedSettings(_Model):
    """相关阅读: other stories on the same subject, listed with every story."""

    limit: int = Field(default=5, ge=0, le=20, description="Stories per list (0: none).")
    window: Duration = Field(
        default=30 * 86400.0, description="Only stories published within this are related."
    )
    half_life: Duration = Field(
        default=14 * 86400.0, description="A story this much older counts half as related."
    )
    max_per_source: int = Field(
        default=2, ge=0, description="Entries from one primary source per list (0: no cap)."
    )
    same_section_boost: float = Field(
        default=10.0, ge=0, description="Extra weight of stories filed in the same section."
    )
    title_weight: float = Field(
        default=2.0, ge=0, description="A title word counts as this many body words."
    )


class HotSettings(_Model):
    """热门: stories carried by many sources and spreading fast, decayed with age."""

    half_life: Duration = Field(default=12 * 3600.0, description="Hotness halves this often.")
    velocity_window: Duration = Field(
        default=6 * 3600.0, description="Sources joining within this count as spreading."
    )
    max_age: Duration = Field(default=7 * 86400.0, description="Older stories are never hot.")


class Section(_Model):
    id: Ident
    title: str
    parent: str | None = None
    rules: Annotated[tuple[SectionRule, ...], BeforeValidator(_rule_list)] = Field(
        default=(), description="One rule or a list of rules."
    )


class CategorizeSettings(_Model):
    """How items are filed into sections (see README, "Sections")."""

    fallback: str | None = Field(
        default=None,
        description="Leaf section for items nothing places confidently (e.g. 综合); "
        "unset: the best guess.",
    )
    min_confidence: float = Field(
        default=0.4, ge=0, le=1, description="Content share needed to file an item by content."
    )
    override_margin: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="How far the content must beat a channel's own section to file the item "
        "elsewhere: higher trusts channels more.",
    )
    exclude_margin: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="How clearly models that never saw a channel item must place it in "
        "another section for it to be left out of training (a misfiled item, not a hint).",
    )
    rule_weight: float = Field(
        default=1.0, ge=0, description="Strength of one rule vote against the classifier."
    )
    retrain_interval: Duration = Field(
        default=6 * 3600.0, description="How often the classifier is retrained when data changed."
    )
    min_examples: int = Field(
        default=10, ge=1, description="Training items a section needs to be learned."
    )
    max_examples: int = Field(
        default=2000, ge=10, description="Newest training items used per section."
    )
    self_training: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of unlabelled recent items the first model is surest of, added back "
        "for a second fit (0: off). The word model only: with the sentence encoder it is not "
        "used (it did not help there).",
    )
    refile_window: Duration = Field(
        default=14 * 86400.0,
        description="When the model or the sections change, items published or first seen "
        "this recently are filed again (items in a section that no longer exists always are).",
    )
    encoder: Literal["none", "use", "auto"] = Field(
        default="none",
        description="use: add the multilingual Universal Sentence Encoder (pip extra "
        "'semantic'; more accurate, slower, only for items the fast model is unsure of); "
        "auto: use it when installed.",
    )


Encoding = Literal[
    "utf-8",
    "gb2312",
    "gbk",
    "gb18030",
    "big5",
    "big5hkscs",
    "utf-16",
    "iso-8859-1",
    "windows-1252",
    "euc-jp",
    "shift_jis",
    "euc-kr",
]


class Source(_Model):
    id: Ident
    name: str
    url: FeedURL
    region: str | None = None
    section: str | None = Field(default=None, description="Default section id for its items.")
    interval: Duration | None = Field(
        default=None, description="Default: schedule.default_interval"
    )
    encoding: Encoding | None = Field(
        default=None, description="Override a wrong or missing declared encoding."
    )
    timezone: str | None = Field(
        default=None, description="Zone for this feed's zone-less times; default: the site's."
    )
    priority: int = Field(
        default=0,
        description="Higher wins: the primary item of a story comes from the highest-priority "
        "source that carried it (ties: the earliest published).",
    )
    enabled: bool = True


class Settings(_Model):
    site: SiteSettings = SiteSettings()
    storage: StorageSettings = StorageSettings()
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    web: WebSettings = WebSettings()
    stories: StorySettings = StorySettings()
    categorize: CategorizeSettings = CategorizeSettings()
    related: RelatedSettings = RelatedSettings()
    hot: HotSettings = HotSettings()
    sections: tuple[Section, ...] = ()
    sources: tuple[Source, ...] = ()
