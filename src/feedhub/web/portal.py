"""What the reader-facing pages ask of the data: a narrow, read-only seam.

The pages know nothing of storage, clustering or ranking. They are rendered from these frozen
values, handed over by one ``PortalData`` implementation (over storage in the service, in memory
in tests). Keeping the seam this small lets the page code be tested, timed and browsed without a
database, and lets the data side change how it finds hot or related stories freely.

Every text field is plain text and is escaped when rendered, except ``StoryPage.content_html``,
which must already be sanitized (nh3, at ingestion): it is the one field inserted as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SectionNode:
    """One section of the operator's tree; ``parent`` is None at the top level.

    ``count`` is the number of stories listed on the section's page (its subtree's, when the
    data side lists descendants there too).
    """

    id: str
    title: str
    parent: str | None
    count: int


@dataclass(frozen=True, slots=True)
class SourceRef:
    """An outlet that carried a story, and the address of its copy (None when it gave none)."""

    id: str
    name: str
    url: str | None


@dataclass(frozen=True, slots=True)
class StoryCard:
    """A story as lists show it.

    ``published`` is aware (any zone; pages show it in the site's zone). ``url`` is the primary
    copy's original address. ``excerpt`` is plain text, the first lines of the story.
    """

    id: str
    title: str
    url: str | None
    published: datetime
    sources: tuple[SourceRef, ...]
    section_id: str | None
    excerpt: str


@dataclass(frozen=True, slots=True)
class Outlet:
    """One member item of a story: who carried it, under which title, when, and where."""

    source_id: str
    source_name: str
    title: str
    url: str | None
    published: datetime | None


@dataclass(frozen=True, slots=True)
class StoryPage:
    """Everything the story page shows. ``content_html`` is sanitized HTML (or empty)."""

    card: StoryCard
    content_html: str
    author: str | None
    outlets: tuple[Outlet, ...]
    related: tuple[StoryCard, ...]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a longer list. ``page`` counts from 1; ``pages`` is at least 1."""

    items: tuple[StoryCard, ...]
    page: int
    pages: int
    total: int


class PortalData(Protocol):
    """The read side the pages render from. Calls are synchronous and may block (storage).

    ``data_version`` is called on every request and decides whether a cached page or a client's
    ETag is still good, so it must be cheap (an implementation over a database should cache it
    for a second or so) and must change whenever anything any page shows changes.
    """

    def sections(self) -> Sequence[SectionNode]:
        """Every section, parents before children, in the operator's order."""
        ...

    def section_stories(self, section_id: str, page: int, per_page: int) -> Page | None:
        """A section's stories, newest first; None when the section does not exist."""
        ...

    def story(self, story_id: str) -> StoryPage | None:
        """One story with its outlets and related stories; None when unknown."""
        ...

    def hot(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        """Up to ``n`` hottest stories, site-wide (None) or in one section."""
        ...

    def latest(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        """Up to ``n`` newest stories, site-wide (None) or in one section."""
        ...

    def search(self, q: str, page: int, per_page: int) -> Page:
        """Stories whose title or text contain ``q`` (already trimmed, non-empty), best first.

        Chinese has no spaces: a query word must match inside running text, so an implementation
        matches substrings (FTS5 trigram, LIKE, or a word index built with a Chinese tokenizer).
        """
        ...

    def data_version(self) -> str:
        """A token that changes whenever any story, section or ranking changes."""
        ...


@runtime_checkable
class SectionTree(Protocol):
    """What a ``PortalData`` may also offer: its sections without their story counts.

    Only the home page and a section's own total show counts; the other pages need the tree
    for their navigation alone. Counting every section is the costliest read of a first render
    after new data (100,000 stories: a walk over the whole section index), so the pages ask
    for the tree alone where they can; a ``PortalData`` without this method is asked for
    ``sections()`` instead.
    """

    def section_tree(self) -> Sequence[SectionNode]:
        """As ``sections()``, but every ``count`` is -1 (not counted)."""
        ...
