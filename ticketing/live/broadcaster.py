"""One snapshot per interval, fanned out to every client of this process.

The :class:`Broadcaster` owns one background thread per process. Each interval
it takes a :class:`~ticketing.live.snapshot.Snapshot` (a fixed number of
Prometheus queries, one Alertmanager request and one database query, whether 1
or 200 clients are connected), serializes each distinct view once (one for all
staff, one per connected partner) and offers the frame to every
:class:`Subscriber`.

Fan-out never waits for a client: :meth:`Subscriber.offer` puts the frame in
the client's small bounded queue and wakes the client's own connection thread,
which does the writing. A client whose queue is full is too slow (its thread
is stuck writing to a connection that does not drain): it is dropped, its
socket shut down, and the broadcaster moves on.

The thread starts with the first client, idles while nobody is connected, and
is started again in a forked child (gunicorn with ``preload_app``).

    broadcaster = Broadcaster(app, settings)
    if broadcaster.reserve():            # a connection slot (max_clients)
        broadcaster.subscribe(subscriber)
        ...
        broadcaster.unsubscribe(subscriber)
        broadcaster.release()
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from prometheus_client import Counter, Gauge, Histogram

from ticketing.live.settings import LiveSettings
from ticketing.live.snapshot import (
    AlertmanagerSource,
    PrometheusSource,
    Snapshot,
    open_tickets_by_partner,
    partner_view,
    staff_view,
    take_snapshot,
)

log = logging.getLogger("ticketing.live")

CLIENTS = Gauge(
    "live_feed_clients",
    "Authenticated WebSocket clients of the live feed.",
    multiprocess_mode="livesum",
)
DISCONNECTS = Counter(
    "live_feed_disconnects_total", "Live feed connections that ended, by reason.", ["reason"]
)
SNAPSHOTS = Counter("live_feed_snapshots_total", "Snapshots taken by the live feed.")
SNAPSHOT_DURATION = Histogram(
    "live_feed_snapshot_duration_seconds",
    "Time to read every source for one snapshot.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SOURCE_ERRORS = Counter(
    "live_feed_source_errors_total", "Snapshots in which a source could not be read.", ["source"]
)
DISCONNECT_REASONS = (
    "closed",
    "heartbeat",
    "too_big",
    "slow",
    "bad_messages",
    "auth_failed",
    "revoked",
    "shutdown",
)
for _reason in DISCONNECT_REASONS:  # every series exists from the start, at 0
    DISCONNECTS.labels(_reason)
for _source in ("prometheus", "alertmanager", "database"):
    SOURCE_ERRORS.labels(_source)


def abort_connection(ws: Any) -> None:
    """End a connection at once, without a closing handshake (it may be stuck).

    Shutting the socket down makes a write blocked in another thread fail
    immediately and the connection's reader thread see the end of the stream.
    """
    ws.connected = False
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    ws.event.set()


class Subscriber:
    """One authenticated connection: its caller, its bounded queue of frames, its fate."""

    def __init__(self, ws: Any, actor: Any, queue_size: int):
        self.ws = ws
        self.actor = actor
        self.view_key: Any = "staff" if actor.kind == "staff" else ("partner", actor.id)
        self.frames: queue.Queue[str] = queue.Queue(maxsize=queue_size)
        self.drop_reason: str | None = None

    def offer(self, frame: str) -> bool:
        """Queue ``frame`` without blocking; a full queue drops this client."""
        try:
            self.frames.put_nowait(frame)
        except queue.Full:
            self.drop("slow")
            return False
        self.wake()
        return True

    def wake(self) -> None:
        # simple-websocket's receive() waits on this event; setting it wakes the
        # connection thread, which then sends what is queued.
        self.ws.event.set()

    def drop(self, reason: str) -> None:
        if self.drop_reason is None:
            self.drop_reason = reason
        abort_connection(self.ws)


class Broadcaster:
    """The per-process snapshot loop and the registry of this process's clients."""

    def __init__(
        self,
        app: Flask,
        settings: LiveSettings,
        tickets: Callable[[], dict[int, dict[str, int]]] = open_tickets_by_partner,
    ):
        self.app = app
        self.settings = settings
        self._tickets = tickets
        self.prometheus = PrometheusSource(
            settings.prometheus_url, settings.query_timeout, settings.queries
        )
        self.alertmanager = AlertmanagerSource(settings.alertmanager_urls, settings.query_timeout)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._subscribers: set[Subscriber] = set()
        self._reserved = 0
        self._latest: Snapshot | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stopping = False

    # ---------------------------------------------------------- clients

    def reserve(self) -> bool:
        """Take a connection slot; False when ``max_clients`` are connected or connecting."""
        with self._lock:
            self._adopt_process()
            if self._stopping or self._reserved >= self.settings.max_clients:
                return False
            self._reserved += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._reserved = max(self._reserved - 1, 0)

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._adopt_process()
            self._subscribers.add(subscriber)
            self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
                self._thread.start()
        CLIENTS.inc()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber not in self._subscribers:
                return
            self._subscribers.discard(subscriber)
        CLIENTS.dec()

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _adopt_process(self) -> None:
        """After a fork the child has no thread and none of the parent's clients."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = None
            self._subscribers = set()
            self._reserved = 0
            self._stopping = False

    # ---------------------------------------------------------- snapshots

    def latest(self, timeout: float = 0.0) -> Snapshot | None:
        """The latest snapshot; waits up to ``timeout`` for the first one."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._latest is None and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._latest

    def view_json(self, snap: Snapshot, view_key: Any) -> str:
        """The JSON of one caller's view of ``snap``, serialized once per snapshot."""
        data = snap.views.get(view_key)
        if data is None:
            s = self.settings
            if view_key == "staff":
                view = staff_view(snap, max_alerts=s.max_alerts, hidden_alerts=s.hidden_alerts)
            else:
                view = partner_view(
                    snap,
                    view_key[1],
                    max_alerts=s.max_alerts,
                    partner_alerts=s.partner_alerts - s.hidden_alerts,
                )
            data = snap.views[view_key] = json.dumps(view, separators=(",", ":"))
        return data

    def frame(self, kind: str, snap: Snapshot, view_key: Any) -> str:
        """A complete message: ``{"type", "seq", "timestamp", "data"}``."""
        return (
            f'{{"type":"{kind}","seq":{snap.seq},"timestamp":"{snap.timestamp}",'
            f'"data":{self.view_json(snap, view_key)}}}'
        )

    def _run(self) -> None:
        interval = self.settings.interval
        next_at = time.monotonic()
        while True:
            with self._lock:
                while not self._subscribers and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
            delay = next_at - time.monotonic()
            if delay > 0:
                with self._lock:
                    self._changed.wait(delay)  # woken early only to stop
                continue
            next_at = max(next_at + interval, time.monotonic())
            try:
                self._publish(self._take())
            except Exception:  # never let one bad round end the feed
                log.exception("live feed: snapshot round failed")

    def _take(self) -> Snapshot:
        self._seq += 1
        started = time.monotonic()

        def tickets() -> dict[int, dict[str, int]]:
            with self.app.app_context():
                return self._tickets()

        snap = take_snapshot(
            self._seq, self.prometheus, self.alertmanager, tickets, self.settings.query_offset
        )
        SNAPSHOT_DURATION.observe(time.monotonic() - started)
        SNAPSHOTS.inc()
        for source, status in snap.sources.items():
            if not status["ok"]:
                SOURCE_ERRORS.labels(source).inc()
        return snap

    def _publish(self, snap: Snapshot) -> None:
        with self._lock:
            self._latest = snap
            self._changed.notify_all()
            subscribers = list(self._subscribers)
        frames: dict[Any, str] = {}
        for subscriber in subscribers:
            key = subscriber.view_key
            if key not in frames:
                frames[key] = self.frame("snapshot", snap, key)
            subscriber.offer(frames[key])

    # ---------------------------------------------------------- shutdown

    def stop(self, reason: str = "shutdown") -> None:
        """Stop the loop and end every connection of this process (does not block)."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            if subscriber.drop_reason is None:
                subscriber.drop_reason = reason
            subscriber.wake()

    @property
    def stopping(self) -> bool:
        return self._stopping
