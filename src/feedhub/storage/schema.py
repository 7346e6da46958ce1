"""Tables as SQLAlchemy Core metadata, and the one datetime type every table uses.

The migrations in ``migrations/versions`` are the history that builds this schema; a test compares
the two so they cannot drift apart. Queries import the ``Table`` objects from here.

Room left for what comes next: items carry an integer ``pk`` (stories and sections will refer to
items by it, and it grows monotonically, so "items after pk N" finds work for the deduplicator),
and ``published`` is never NULL so every listing can use one index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-numbers an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
BigPK = BigInteger().with_variant(Integer(), "sqlite")


class _SQLiteDateTime(UserDefinedType[Any]):
    """A DATETIME column whose text ``UTCDateTime`` reads and writes itself.

    SQLAlchemy's own SQLite datetime converts through a regular expression on every row; the
    fixed format below (the same one SQLAlchemy writes) round-trips with ``isoformat`` and
    ``fromisoformat``, which matters at thousands of items a second.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend.

    PostgreSQL keeps ``timestamptz`` and hands back aware values; SQLite keeps text and would hand
    back naive ones. Converting here, in one place, means no caller ever compares a naive datetime
    with an aware one. Naive input is refused rather than guessed at: a naive time in this project
    is a bug (feeds from China give zone-less times that are 8 hours off if taken as UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteDateTime()
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware one")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Fixed-width text (always with microseconds), so comparisons in SQL stay
            # chronological: "2025-11-25 08:00:00.000000".
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


sources = Table(
    "sources",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("configured", Boolean, nullable=False, server_default=text("true")),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("next_check_at", UTCDateTime),
    Column("claimed_until", UTCDateTime),
    Column("last_attempt_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_new_item_at", UTCDateTime),
    Column("last_error", Text),
    Column("error_count", Integer, nullable=False, server_default=text("0")),
    Column("disabled_reason", Text),
    Column("redirected_to", Text),
    Column("publish_interval", Float),
    Column("item_count", Integer, nullable=False, server_default=text("0")),
    # Fetches by outcome, counted as polls are recorded (the fetch log is pruned).
    Column("fetches_ok", BigInteger, nullable=False, server_default=text("0")),
    Column("fetches_not_modified", BigInteger, nullable=False, server_default=text("0")),
    Column("fetches_error", BigInteger, nullable=False, server_default=text("0")),
    Index(None, "next_check_at"),
)

items = Table(
    "items",
    metadata,
    Column("pk", BigPK, primary_key=True, autoincrement=True),
    Column("source_id", Text, ForeignKey("sources.id"), nullable=False),
    Column("entry_id", Text, nullable=False),
    Column("link", Text),
    Column("title", Text, nullable=False),
    Column("author", Text),
    Column("summary", Text),
    Column("content", Text),
    # item.published, or first_seen when the feed gave none: never NULL, so one index sorts all.
    Column("published", UTCDateTime, nullable=False),
    Column("published_given", Boolean, nullable=False, server_default=false()),
    Column("updated", UTCDateTime),
    Column("categories", Text, nullable=False, server_default=text("'[]'")),  # JSON array
    Column("content_hash", Text, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_changed", UTCDateTime, nullable=False),
    # stories (0002): the public key, the story the item joined and why
    Column("item_key", Text, nullable=False),
    Column("story_id", Text),
    Column("fingerprint", LargeBinary),
    Column("match_reason", Text),
    Column("match_key", Text),
    Column("match_score", Float),
    Column("match_title_sim", Float),
    Column("match_text_sim", Float),
    # sections (0003): the leaf the item is filed under, the operator's pin, the filing
    # configuration that decided it (NULL: not filed yet), why (JSON), and when
    Column("section_id", Text),
    Column("section_pin", Text),
    Column("section_key", Text),
    Column("section_detail", Text),
    Column("section_at", UTCDateTime),
    # search (0006): the item's terms (core.searchterms) and when made; NULL: index it.
    # SQLite's FTS5 table items_fts and PostgreSQL's GIN index ix_items_search cover the terms;
    # they are made by the migration alone (neither is a plain table or column index).
    Column("search_terms", Text),
    Column("search_at", UTCDateTime),
    UniqueConstraint("source_id", "entry_id"),
    Index("ix_items_newest", "published", "first_seen", "pk"),
    Index("ix_items_source_newest", "source_id", "published", "first_seen", "pk"),
    Index("ix_items_last_changed", "last_changed"),  # data_version() for the feed caches
    Index("ix_items_item_key", "item_key", unique=True),
    # story members by first seen (0005): hot ranking and related reading read only these
    Index("ix_items_story_seen", "story_id", "first_seen", "source_id"),
    Index("ix_items_section_id", "section_id"),  # items per section, counted from the index
    Index("ix_items_section_key", "section_key"),
    Index("ix_items_section_at", "section_at"),
    Index("ix_items_search_at", "search_at"),
    Index("ix_items_pk_story", "pk", "story_id"),  # search: item -> story (0008)
)

stories = Table(
    "stories",
    metadata,
    Column("id", Text, primary_key=True),  # the founding item's key
    Column("published", UTCDateTime, nullable=False),  # the founder's: never changes
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),  # last member joined
    Column("member_count", Integer, nullable=False, server_default=text("1")),
    Column("section_id", Text),  # the founding item's section (0003)
    Column("related_at", UTCDateTime),  # related reading computed (0004); NULL: due
    Index("ix_stories_published", "published", "id"),
    Index("ix_stories_section_published", "section_id", "published", "id"),
    Index("ix_stories_related_at", "related_at"),
    Index("ix_stories_created_at", "created_at"),  # the hot window (0005)
    Index("ix_stories_updated_at", "updated_at"),  # max() in the data version (0005)
    Index("ix_stories_id_published", "id", "published"),  # search: story -> time (0008)
)

story_related = Table(
    "story_related",
    metadata,
    Column("story_id", Text, primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("related_id", Text, nullable=False),
    Column("score", Float, nullable=False),
)

section_models = Table(
    "section_models",
    metadata,
    Column("version", Text, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("examples", Integer, nullable=False),
    Column("info", Text, nullable=False),  # JSON: sections, counts, what it was trained on
    Column("data", LargeBinary, nullable=False),  # Model.to_bytes(): npz, no pickle
    Index("ix_section_models_created_at", "created_at"),
)

fetch_log = Table(
    "fetch_log",
    metadata,
    Column("pk", BigPK, primary_key=True, autoincrement=True),
    Column("source_id", Text, ForeignKey("sources.id"), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration", Float, nullable=False),
    Column("status", Integer),
    Column("bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("new_items", Integer, nullable=False, server_default=text("0")),
    Column("updated_items", Integer, nullable=False, server_default=text("0")),
    Column("error", Text),
    Index(None, "source_id", "started_at"),
    Index(None, "started_at"),
)
