"""Turn a configured database URL into a tuned SQLAlchemy engine.

SQLite gets a small pool of connections per process (one for an in-memory database, which
exists per connection): in WAL mode readers never wait for the writer, so a page render is not
held up by a poll's write or by a long read such as the hot ranking, while writers still take
turns through SQLite's lock (``busy_timeout``). Pooled connections avoid paying for connects
and pragmas on every call. The sqlite3 module's own implicit transactions are switched off: write
transactions start with ``BEGIN IMMEDIATE`` (``begin_write``) so that a writer takes the lock
before it reads; a deferred transaction that reads first and writes later can fail at once with
"database is locked" instead of waiting for ``busy_timeout``. Reads run without a transaction.

PostgreSQL gets an ordinary connection pool over psycopg 3.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from feedhub.errors import StorageError

BUSY_TIMEOUT_S = 15.0
WAL_CHECKPOINT_PAGES = 10_000  # pages of 4 KiB
CACHE_KIB = 32 * 1024
PG_CONNECT_TIMEOUT_S = 10


def mask(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def parse(url: str) -> URL:
    """Parse and normalize: ``postgres://`` and ``postgresql://`` mean psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(f"invalid database URL {mask(url)!r}: {exc}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    if backend == "sqlite":
        return parsed
    raise StorageError(
        f"unsupported database {backend!r} in {mask(url)!r}: use sqlite:/// or postgresql://"
    )


def make_engine(url: str) -> Engine:
    parsed = parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(
            parsed,
            pool_size=5,
            max_overflow=5,
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
        )
    except (SQLAlchemyError, ImportError) as exc:
        raise StorageError(f"cannot open database {mask(url)!r}: {exc}") from exc


SQLITE_POOL = 4  # connections per process: a few readers beside the one writer


def is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url.database)


def _sqlite_engine(url: URL) -> Engine:
    if not is_memory(url) and url.database and not url.database.startswith("file:"):
        path = Path(url.database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the directory for SQLite database {str(path)!r}: {exc}"
            ) from exc
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=1 if is_memory(url) else SQLITE_POOL,
        max_overflow=0,
        pool_timeout=BUSY_TIMEOUT_S * 4,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
        # Every transaction ends in an explicit commit or rollback and reads run outside one,
        # so the rollback the pool would issue on each check-in is pure overhead.
        pool_reset_on_return=None,
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # No implicit BEGIN from the sqlite3 module: begin_write() issues it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint at 40 MB of WAL instead of 4: pages that a cycle of polls writes again
        # and again (index leaves, full-text segments) reach the database file once per
        # checkpoint, which took a cycle of new items from about 690 to 185 MB written.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        # A 32 MiB page cache per connection (SQLite's default is 2 MiB): the store thread's
        # inserts touch eleven item indexes and the full-text index's segments; about 8 %
        # less CPU per new item on the poll farm.
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def begin_write(connection: Connection) -> None:
    """Start the write transaction SQLAlchemy has just opened (a no-op at the driver level).

    Issued on the driver connection: going through ``exec_driver_sql`` or a "begin" event
    listener costs more than the rest of an empty poll's transaction.
    """
    if connection.dialect.name == "sqlite":
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
