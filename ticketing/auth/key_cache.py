"""API keys this process has checked recently, so a request need not ask the database.

Checking a key costs two queries and a transaction; every request carries
one, and a partner sends the same key request after request. Each app keeps a
small cache (``app.extensions["ticketing_key_cache"]``): the SHA-256 of a key
(what the database stores) -> the :class:`~ticketing.auth.Actor` it names, for
``api.key_cache_ttl`` seconds (default 5 s; 0 turns the cache off). Only keys
that were accepted are cached; a refused key is asked about every time.

How soon a change to a key or its owner takes effect:

- in this process, at once: committing a change to an ``ApiKey``, ``Partner``
  or ``Staff`` row through the ORM (the ``revoke-key`` command, a suspended
  partner, a deactivated staff member) empties every cache of the process,
  and a failed check of a key forgets that key;
- in other processes (the other gunicorn workers, other hosts), within the
  TTL: their entries expire and the next request checks the key again.

The cache also remembers when the key's ``last_used_at`` was last written, so
that it is written at most once a minute per key and process
(:data:`ticketing.auth.LAST_USED_RESOLUTION`) instead of on every request.

    cache = KeyCache(ttl=5.0)
    cache.put(digest, actor, last_used_at)
    entry = cache.get(digest)          # None once expired or forgotten
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from ticketing.auth import Actor

EXTENSION_KEY = "ticketing_key_cache"
#: ``Session.info`` flag: the transaction changed keys, partners or staff.
_CHANGED_FLAG = "ticketing_keys_changed"
#: Execution option marking the service's own ``last_used_at`` update (no reason to forget keys).
LAST_USE_OPTION = "ticketing_key_last_use"


@dataclass
class Entry:
    """One accepted key: who it names, until when to trust that, its last recorded use."""

    actor: Actor
    expires: float
    last_used_at: datetime | None


class KeyCache:
    """Key digest -> :class:`Entry`, for ``ttl`` seconds, at most ``size`` entries."""

    def __init__(
        self, ttl: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        #: Counts the times the cache was emptied (see :meth:`put`).
        self.generation = 0
        _caches.add(self)

    def get(self, digest: str) -> Entry | None:
        entry = self._entries.get(digest)
        if entry is None or entry.expires <= self.clock():
            return None
        return entry

    def put(
        self, digest: str, actor: Any, last_used_at: datetime | None, generation: int | None = None
    ) -> None:
        """Remember an accepted key. ``generation``: the cache's :attr:`generation`
        when the key was read from the database; if the cache was emptied since,
        what was read may be out of date and is not kept."""
        entry = Entry(actor, self.clock() + self.ttl, last_used_at)
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            self._entries.pop(digest, None)
            self._entries[digest] = entry
            while len(self._entries) > self.size:  # the oldest entries go first
                del self._entries[next(iter(self._entries))]

    def discard(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.generation += 1

    def __len__(self) -> int:
        return len(self._entries)


_caches: weakref.WeakSet[KeyCache] = weakref.WeakSet()


def forget_all() -> None:
    """Empty every key cache of this process (a key, partner or staff member changed)."""
    for cache in list(_caches):
        cache.clear()


# ------------------------------------------------------------------ invalidation

_WATCHED_TABLES = frozenset({"api_keys", "partners", "staff"})


def _changes_access(obj: Any, deleted: bool = False) -> bool:
    """Whether a flushed change to ``obj`` can change what a cached key grants.

    New rows cannot (a new key was never cached); nor can a key's own last
    use, which the check itself writes.
    """
    if getattr(obj, "__tablename__", None) not in _WATCHED_TABLES:
        return False
    if deleted:
        return True
    return any(
        attr.history.has_changes() for attr in inspect(obj).attrs if attr.key != "last_used_at"
    )


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush_context: Any) -> None:
    # (In after_flush, ``dirty`` and ``deleted`` and the attribute history are still
    # those of the flush.)
    changed = any(_changes_access(obj, deleted=True) for obj in session.deleted) or any(
        _changes_access(obj) for obj in session.dirty
    )
    if changed:
        session.info[_CHANGED_FLAG] = True
        forget_all()


@event.listens_for(Session, "do_orm_execute")
def _bulk_change(state: Any) -> None:
    if not (state.is_update or state.is_delete) or state.execution_options.get(LAST_USE_OPTION):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _WATCHED_TABLES:
        state.session.info[_CHANGED_FLAG] = True
        forget_all()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Again after the commit: another thread may have cached the old row in between.
    if session.info.pop(_CHANGED_FLAG, False):
        forget_all()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_CHANGED_FLAG, None)
