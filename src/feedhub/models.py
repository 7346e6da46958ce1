"""Frozen values passed between layers. No behaviour beyond small derived properties."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


def item_key(source_id: str, entry_id: str) -> str:
    """Public id of an item: derived from its identity alone, so it never changes or repeats."""
    return hashlib.sha1(f"{source_id}\n{entry_id}".encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Item:
    """One normalized feed entry, ready to store.

    ``entry_id`` is stable across polls: the guid/id, else the canonical link, else a content hash.
    ``published`` is aware UTC, or None when the feed gave none (or an unusable one); storage then
    uses the first-seen time. HTML fields are already sanitized. ``content_hash`` covers every
    field, so a changed entry is detected without comparing field by field.
    """

    source_id: str
    entry_id: str
    link: str | None
    title: str
    author: str | None
    summary: str | None
    content: str | None
    published: datetime | None
    updated: datetime | None
    categories: tuple[str, ...]
    content_hash: str
    # The deduplication fingerprint, when the parser already made one (in a worker process);
    # not part of the item's identity or content.
    fingerprint: bytes | None = field(default=None, compare=False, repr=False)
    # Its full-text search terms, likewise made beside the parse when that runs in a worker.
    search_terms: str | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return item_key(self.source_id, self.entry_id)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What parse+normalize made of one document."""

    title: str | None
    link: str | None
    language: str | None
    version: str  # feedparser's name for the format: rss20, atom10, json11, ...
    encoding: str | None
    items: tuple[Item, ...]
    ttl_minutes: int | None = None  # RSS <ttl>
    skip_hours: frozenset[int] = frozenset()  # RSS <skipHours>, hours 0-23 (GMT)
    skip_days: frozenset[int] = frozenset()  # RSS <skipDays>, 0=Monday .. 6=Sunday
    warnings: tuple[str, ...] = ()  # bozo and per-entry problems that did not stop the feed


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A completed HTTP exchange that produced a feed body (200) or nothing new (304)."""

    requested_url: str
    url: str  # final URL after redirects
    status: int  # 200 or 304
    content: bytes | None  # None on 304
    headers: Mapping[str, str]  # final response headers, lower-case names
    elapsed: float  # seconds, whole exchange
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None  # set when every hop to ``url`` was 301/308
    redirects: tuple[str, ...] = field(default=())

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class SourceState:
    """What storage remembers about a source between polls."""

    source_id: str
    url: str  # the URL in the config when last synced
    etag: str | None = None
    last_modified: str | None = None
    next_check_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_new_item_at: datetime | None = None
    last_error: str | None = None
    error_count: int = 0  # consecutive
    disabled_reason: str | None = None  # e.g. "410 Gone"; None = active
    redirected_to: str | None = None  # permanent redirect seen, reported to the operator
    publish_interval: float | None = None  # observed mean seconds between new items
    item_count: int = 0


@dataclass(frozen=True, slots=True)
class FetchLogEntry:
    source_id: str
    started_at: datetime
    duration: float
    status: int | None  # HTTP status, None when no response
    bytes: int
    new_items: int
    updated_items: int
    error: str | None


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    new: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """The part of a configured source that storage keeps a row for."""

    source_id: str
    url: str


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as stored: the item plus what storage adds."""

    item: Item
    first_seen: datetime  # aware UTC
    last_changed: datetime  # aware UTC; first_seen until the entry changes
    published: datetime  # item.published, or first_seen when the feed gave none
    section_id: str | None = None  # the leaf section it is filed under, once filed
    story_id: str | None = None  # the story it belongs to, once clustered


# --- publishing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceCredit:
    """An outlet that carried an entry, with the link to its own copy of the article."""

    id: str
    name: str
    url: str | None


@dataclass(frozen=True, slots=True)
class RelatedLink:
    id: str
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of a published feed (an item now; a story once stories exist).

    ``guid`` never changes once published. ``content_html`` is sanitized HTML (content, else
    summary); the renderer adds the visible source credit and the related-reading list.
    """

    id: str  # feedhub's id for it (used in _feedhub and in page URLs)
    guid: str
    title: str
    link: str | None  # canonical link to the original article
    published: datetime
    updated: datetime
    content_html: str | None
    summary_html: str | None
    author: str | None
    section_id: str | None
    section_title: str | None
    sources: tuple[SourceCredit, ...]  # primary first
    related: tuple[RelatedLink, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """Feed-level data. ``self_url`` is the feed's own URL without the format extension."""

    title: str
    description: str
    language: str
    home_url: str  # the site's page for this feed
    self_url: str  # e.g. https://news.example.cn/feeds/all (".xml", ".atom", ".json" added)
    updated: datetime
    ttl_minutes: int = 30
    generator: str = "feedhub"


# --- stories ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryLink:
    """Why an item is in its story: what it matched and how closely (None for a founder)."""

    reason: str | None = None  # "same-url" | "near-duplicate" | None (started the story)
    matched_key: str | None = None
    score: float | None = None
    title_similarity: float | None = None
    text_similarity: float | None = None


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """The clusterer's verdict for one stored item, for ``Storage.assign_stories``."""

    item_pk: int
    story_id: str
    new_story: bool  # True: the item founds the story (its id is the item's key)
    fingerprint: bytes
    link: StoryLink
    published: datetime  # the founder's published time: the story's, forever


@dataclass(frozen=True, slots=True)
class StoryPlacement:
    """The clusterer's verdict for a new item decided while it is stored (``record_poll``
    with a ``Placer``): the item is then written once, already in its story."""

    story_id: str
    new_story: bool  # True: the item founds the story (its id is the item's key)
    fingerprint: bytes
    link: StoryLink
    published: datetime  # the founder's published time: the story's, forever


@dataclass(frozen=True, slots=True)
class PendingItem:
    pk: int
    stored: StoredItem
    fingerprint: bytes | None = None  # made at parse time, if it was


@dataclass(frozen=True, slots=True)
class WindowEntry:
    """A recent item (by first-seen time) as the clusterer's index needs it."""

    pk: int
    key: str
    source_id: str
    story_id: str
    fingerprint: bytes
    published: datetime  # the stored published time: what matching compares


@dataclass(frozen=True, slots=True)
class StoryMember:
    stored: StoredItem
    link: StoryLink

    @property
    def key(self) -> str:
        return self.stored.item.key


@dataclass(frozen=True, slots=True)
class Story:
    """A story as stored: fixed id and published time, members in the order they joined."""

    id: str
    published: datetime
    created_at: datetime
    updated_at: datetime
    members: tuple[StoryMember, ...]
    section_id: str | None = None  # the founding item's section

    @property
    def source_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.stored.item.source_id for m in self.members))


# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilingTask:
    """An item to file (or file again) under a section."""

    pk: int
    stored: StoredItem
    pin: str | None  # the operator's pinned section, if any


@dataclass(frozen=True, slots=True)
class Filing:
    """Where an item goes and why (``detail`` is JSON for ``feedhub explain``)."""

    pk: int
    key: str  # the item's key (a story founded by it takes the same section)
    section_id: str
    filing_key: str  # the configuration and model that decided it
    detail: str


@dataclass(frozen=True, slots=True)
class ItemFiling:
    """An item with its filing, for ``feedhub explain``."""

    stored: StoredItem
    story_id: str | None
    section_id: str | None
    pin: str | None
    filing_key: str | None
    detail: str | None
    filed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TrainingExample:
    stored: StoredItem
    label: str  # leaf section
    pinned: bool = False  # the operator's word, not a channel's hint


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A trained section model as stored: ``data`` is ``Model.to_bytes()``."""

    version: str
    created_at: datetime
    examples: int
    info: str  # JSON
    data: bytes


# --- related reading and hot -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryDoc:
    """A story as related reading reads it: its founding item's text and every source."""

    story_id: str
    title: str
    body: str  # the founder's content or summary (sanitized HTML)
    published: datetime
    source_ids: tuple[str, ...]  # the founder's first, then in order of joining
    section_id: str | None
    section_detail: str | None = None  # the founder's filing decision (JSON)


@dataclass(frozen=True, slots=True)
class StoryActivity:
    """What hotness is computed from: the sources and when each member was first seen."""

    story_id: str
    section_id: str | None
    source_count: int
    member_times: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class RelatedRef:
    """One entry of a stored related-reading list, with what a link needs."""

    story_id: str
    title: str
    score: float
