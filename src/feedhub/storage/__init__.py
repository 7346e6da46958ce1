"""Storage: one Protocol (``Storage``), one SQLAlchemy implementation, chosen by URL.

``open_storage`` does not connect yet; call ``migrate()`` (or ``ping()``) to find out whether the
database answers.
"""

from __future__ import annotations

from feedhub.storage.base import Storage
from feedhub.storage.engine import make_engine
from feedhub.storage.sql import SqlStorage

__all__ = ["Storage", "open_storage"]


def open_storage(url: str) -> Storage:
    """Storage for ``sqlite:///path.db`` (relative to the working directory), ``sqlite:////abs``,
    ``sqlite://`` (in memory, for tests) or ``postgresql://user:pass@host/db``.

    Raises StorageError for a URL that cannot be parsed, a database type feedhub does not
    support, or a SQLite directory that cannot be created.
    """
    return SqlStorage(make_engine(url))
