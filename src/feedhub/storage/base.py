"""The storage contract. The pipeline, the CLI and the web layer see only this Protocol.

Every write that belongs to one poll of one source happens in ``record_poll``, in one
transaction: items, the source's new state and its fetch-log line land together or not at all.
That is what makes a poll safe to kill at any moment: the ETag/Last-Modified that would let the
next poll skip the body are only stored with the items they describe.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from feedhub.models import (
    FetchLogEntry,
    Filing,
    FilingTask,
    Item,
    ItemFiling,
    ModelRecord,
    PendingItem,
    RelatedRef,
    SourceSpec,
    SourceState,
    StoredItem,
    StoreOutcome,
    Story,
    StoryActivity,
    StoryAssignment,
    StoryDoc,
    StoryPlacement,
    TrainingExample,
    WindowEntry,
)


class Placer(Protocol):
    """Puts new items into stories while ``record_poll`` stores them, inside its transaction,
    so that an item is written once, already in its story (``feedhub.stories.Clusterer``)."""

    def place(self, items: Sequence[Item]) -> Mapping[str, StoryPlacement]:
        """Stories for ``items``, each new to storage, by item key; an item left out is stored
        without a story and waits for ``pending_items`` like any other."""

    def stored(self, max_pk_before: int | None, max_pk_after: int | None) -> None:
        """The largest item pk just before and just after the placed items were inserted, in
        the same transaction (whether other writers added items meanwhile)."""


class Storage(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema (Alembic, to head). Safe to call on every start."""

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise StorageError unless the database answers."""

    def sync_sources(self, specs: Sequence[SourceSpec], now: datetime) -> None:
        """Make the source rows match the config.

        New ids get a row due at ``now``. A changed URL resets the validators (ETag,
        Last-Modified), the recorded redirect and a 410 disablement, and makes the source due.
        Ids no longer configured keep their row and their items (they are only marked
        unconfigured and are never claimed).
        """

    def claim_due(
        self,
        now: datetime,
        limit: int,
        lease: timedelta,
        source_ids: Collection[str] | None = None,
        *,
        ignore_schedule: bool = False,
    ) -> list[SourceState]:
        """Atomically claim up to ``limit`` sources for polling and return their state.

        A source is claimable when it is configured, not disabled, not claimed by a live lease,
        in ``source_ids`` if given, and due (``next_check_at`` <= now or unset) unless
        ``ignore_schedule``. Claiming sets a lease until ``now + lease`` so that other pollers
        (other processes too) skip it; ``record_poll`` releases it. Oldest due first.
        """

    def record_poll(
        self,
        state: SourceState,
        items: Sequence[Item],
        log: FetchLogEntry,
        now: datetime,
        placer: Placer | None = None,
    ) -> StoreOutcome:
        """Store one poll's outcome in one transaction and release the source's lease.

        Items are upserted by (source_id, entry_id): new ones are inserted with
        first_seen=now; one whose content_hash changed is updated in place (first_seen and the
        stored published time kept unless the feed now gives a published time); unchanged ones
        are left alone; an entry id twice in one batch counts once. The source row takes every
        field of ``state`` except ``item_count`` (storage counts) and ``last_new_item_at`` (set
        to ``now`` when any item was new). The log line's ``new_items``/``updated_items`` are
        filled in from the outcome. If the configured URL changed while the poll ran, items and
        log are stored but not the state, and the source stays due. Naive datetimes raise
        StorageError; an item or log line of another source raises ValueError (a caller bug).
        With a ``placer``, new items are inserted already in the stories it gives them (and
        the stories they found or join are written in the same transaction).
        """

    def record_polls(
        self,
        polls: Sequence[tuple[SourceState, Sequence[Item], FetchLogEntry]],
        now: datetime,
        placer: Placer | None = None,
    ) -> list[StoreOutcome]:
        """``record_poll`` for each (state, items, log line), in one transaction, outcomes in
        the same order: all of them are stored or none is, so each poll stays atomic with its
        own log line. For a poller finishing many polls at once (a cycle of 304s), where one
        transaction per poll would cost more than the polls. Raises as ``record_poll`` does,
        for the whole batch."""

    def release(self, source_ids: Collection[str]) -> None:
        """Drop leases without recording anything (used when a poll is cancelled)."""

    def get_state(self, source_id: str) -> SourceState | None:
        """Also for sources no longer configured (``list_states`` lists configured ones)."""

    def list_states(self) -> list[SourceState]:
        """Every configured source's state, ordered by id."""

    def list_items(
        self,
        source_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        source_ids: Collection[str] | None = None,
    ) -> list[StoredItem]:
        """Items newest first (by stored published time, then first_seen).

        ``source_ids`` restricts to those sources; an empty collection gives nothing.
        """

    def data_version(self) -> str:
        """Changes whenever an item is added or changed or a story gains a member: the feed
        caches' validity token."""

    # -- stories ----------------------------------------------------------------------------

    def pending_items(self, limit: int = 500) -> list[PendingItem]:
        """Items not yet in a story, oldest first."""

    def window_entries(self, after_pk: int, since: datetime) -> list[WindowEntry]:
        """Clustered items with pk > ``after_pk`` first seen since ``since`` (the index's
        window), in pk order."""

    def assign_stories(self, assignments: Sequence[StoryAssignment], now: datetime) -> int:
        """Put items into stories, in one transaction; return how many were assigned.

        A new story takes the founder's key as id and its published time, for good. An item
        that is already in a story (another clusterer got there first) is left alone.
        """

    def list_stories(
        self,
        source_ids: Collection[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        min_members: int = 1,
        by_update: bool = False,
        section_ids: Collection[str] | None = None,
    ) -> list[Story]:
        """Stories newest first (by their fixed published time, or by last join), with every
        member; with ``source_ids``, those that any of these sources carried; with
        ``section_ids``, those filed under one of these sections."""

    def get_story(self, ident: str) -> Story | None:
        """A story by its id or by the key of any of its items."""

    # -- sections ---------------------------------------------------------------------------

    def items_to_file(
        self,
        filing_key: str,
        cutoff: datetime,
        valid_sections: Collection[str],
        limit: int = 500,
        *,
        unfiled_only: bool = False,
    ) -> list[FilingTask]:
        """The filing queue, newest first: items never filed (or changed since), and unless
        ``unfiled_only`` those filed under another ``filing_key`` that were published or first
        seen since ``cutoff`` or are filed under a section not in ``valid_sections``."""

    def file_items(self, filings: Sequence[Filing], now: datetime) -> int:
        """Record where items are filed, in one transaction; stories founded by them follow."""

    def pin_section(self, item_key: str, section_id: str | None) -> bool:
        """Pin an item to a section (None: unpin) and queue it for filing; False if no such
        item."""

    def item_filing(self, item_key: str) -> ItemFiling | None: ...

    def training_items(
        self, channels: Mapping[str, Collection[str]], per_section: int
    ) -> list[TrainingExample]:
        """Newest items of each section's channel sources, and pinned items, as labels."""

    def unlabeled_items(self, exclude_sources: Collection[str], limit: int) -> list[StoredItem]:
        """Newest items of other sources (for self-training)."""

    def save_model(self, record: ModelRecord) -> None: ...

    def latest_model(self, *, with_data: bool = True) -> ModelRecord | None: ...

    def section_counts(self) -> tuple[dict[str | None, int], dict[str | None, int]]:
        """Items and stories per section id (None: not filed yet)."""

    def story_counts(self) -> dict[str | None, int]:
        """Stories per section id alone (cheaper than ``section_counts``)."""

    # -- related reading, hot, search -------------------------------------------------------

    def related_window(self, since: datetime) -> list[StoryDoc]:
        """Stories published since ``since``, oldest first (loading the related index)."""

    def related_due(self, limit: int = 500) -> list[StoryDoc]:
        """Stories whose related reading is due: new, joined by a source, or re-filed."""

    def save_related(
        self,
        lists: Mapping[str, Sequence[tuple[str, float]]],
        done: Collection[str],
        now: datetime,
    ) -> None:
        """Replace these stories' lists (related id, score) and mark ``done`` as computed."""

    def related_lists(self, story_ids: Collection[str]) -> dict[str, list[RelatedRef]]: ...

    def story_activity(self, since: datetime) -> list[StoryActivity]:
        """Stories first seen since ``since`` with their sources and member times (hotness)."""

    def stories_by_ids(self, story_ids: Sequence[str]) -> list[Story]:
        """In the order given; unknown ids left out."""

    def search_stories(
        self,
        words: Sequence[str],
        limit: int = 20,
        offset: int = 0,
        *,
        section_ids: Collection[str] | None = None,
    ) -> tuple[list[Story], int]:
        """Stories with an item containing every word in its title or text, newest first,
        and the total count (through the full-text index: items not indexed yet are not
        found)."""

    def items_to_index(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        """Items whose search terms are due (new or changed): pk, title, body HTML."""

    def index_items(self, rows: Sequence[tuple[int, str]], now: datetime) -> int:
        """Store items' search terms (pk, terms); the full-text index follows."""

    def fetch_outcomes(self) -> dict[tuple[str, str], int]:
        """Polls recorded per (source id, "ok" | "not_modified" | "error"), counted as they
        are recorded: pruning the fetch log leaves them as they are. Zero counts are left
        out."""

    def prune_fetch_log(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` fetch-log lines that started before ``before``, oldest
        first; returns how many (call again while it returns ``limit``)."""

    def count_items(self, source_id: str | None = None) -> int: ...

    def fetch_log(self, source_id: str | None = None, limit: int = 50) -> list[FetchLogEntry]:
        """Newest first."""

    def last_success_at(self) -> datetime | None:
        """Most recent successful poll of any source (for health checks)."""
