"""One WebSocket client, from authentication to goodbye, in its own server thread.

flask-sock runs :func:`serve` in the worker thread that accepted the
connection (gunicorn's gthread worker; see docs/live.md) and simple-websocket
adds a reader thread that answers pings, collects incoming messages and sends
our heartbeat pings. This thread does all the writing of data frames: the
frames queued by the broadcaster and the answers to the client's messages.

Protocol (JSON text frames, each ``{"type", "timestamp", "data"}``; snapshots
and metrics also carry ``seq``):

- client -> server: ``{"type": "auth", "api_key": "..."}`` (first message, only
  when the upgrade request had no ``X-API-Key`` header), ``{"type":
  "get_metrics"}``, ``{"type": "ping"}``;
- server -> client: ``welcome``, ``snapshot`` (every interval), ``metrics`` (the
  answer to ``get_metrics``: the latest snapshot), ``pong``, ``error``.

Close codes: 4401 authentication missing or invalid (or no longer valid);
1008 too many invalid messages (and simple-websocket's heartbeat timeout);
1009 a message larger than ``max_message_size``; 1002 an invalid frame
(wsproto); 1001 the server is shutting down. A client too slow to take its
frames is cut off without a close frame (it would not read one).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from simple_websocket import ConnectionClosed
from wsproto.connection import ConnectionState
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from ticketing.live.broadcaster import DISCONNECTS, Broadcaster, Subscriber, abort_connection
from ticketing.live.settings import LiveSettings
from ticketing.live.snapshot import iso_timestamp

log = logging.getLogger("ticketing.live")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4401
#: Client messages handled before queued frames get their turn.
MAX_MESSAGES_PER_WAKEUP = 20
#: Invalid messages tolerated (each answered with an error) before closing with 1008.
MAX_INVALID_MESSAGES = 10


class LockedSocket:
    """The connection's socket with whole, serialized writes.

    Two threads write to a connection: this one (data frames) and
    simple-websocket's reader (pongs, pings, close frames). ``send`` and
    ``sendall`` here take a lock and write the whole buffer, so frames never
    interleave or go out half-written. With the socket's timeout set to
    ``send_timeout``, a client that stops reading makes the write fail
    instead of blocking this thread forever.

    ``close`` only ends the stream: the descriptor belongs to the server that
    accepted it (gunicorn, Werkzeug), which closes it when the request ends.
    It ends it gracefully: our side first (the client reads our close frame,
    then the end of the stream), then, once the client has closed its side or
    ``linger`` seconds have passed, the rest. Cutting both ways at once would
    make the kernel answer whatever the client still sends (the pong to a
    ping that crossed our close frame, its own close frame) with a reset, and
    the client could then lose our close frame and its code (4401 for a bad
    key) to "connection reset". Everything else is the socket's.
    """

    linger = 1.0

    def __init__(self, sock: Any):
        self._sock = sock
        #: Held around every write, and by :meth:`Connection.close` around the
        #: close frame, so the stream never ends before a frame being sent.
        self.write_lock = threading.RLock()

    def send(self, data: bytes) -> int:
        with self.write_lock:
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def close(self) -> None:
        try:
            with self.write_lock:
                self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return  # already shut down or gone
        deadline = time.monotonic() + self.linger
        try:
            poller = select.poll()  # not select(): descriptors may be past 1024
            poller.register(self._sock, select.POLLIN)
            while (remaining := deadline - time.monotonic()) > 0:
                if not poller.poll(remaining * 1000) or not self._sock.recv(4096):
                    break  # quiet for too long, or the client closed its side
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def message(kind: str, data: Any = None) -> str:
    return json.dumps(
        {"type": kind, "timestamp": iso_timestamp(time.time()), "data": data}, separators=(",", ":")
    )


def error_message(code: str, text: str) -> str:
    return message("error", {"code": code, "message": text})


class Connection:
    """Serves one accepted WebSocket until it ends."""

    def __init__(
        self,
        ws: Any,
        broadcaster: Broadcaster,
        settings: LiveSettings,
        authenticate: Callable[[str], Any],
    ):
        self.ws = ws
        self.broadcaster = broadcaster
        self.settings = settings
        self.authenticate = authenticate
        self.invalid = 0
        self.write_timed_out = False
        #: whether the client offered a key (a failed check was then reported already)
        self.key_offered = False
        # Whole, locked writes with a deadline (simple-websocket's reader only
        # reads after select() says there is data, so the timeout never cuts a read).
        ws.sock = LockedSocket(ws.sock)
        try:
            ws.sock.settimeout(settings.send_timeout)
            if settings.send_buffer:
                # Bounds what the kernel holds for a client that does not read (autotuning
                # would let it grow to megabytes), so a stuck client shows as one quickly.
                ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer)
        except OSError:  # the client is gone already
            ws.connected = False

    # ---------------------------------------------------------- writing

    def send(self, text: str) -> None:
        """Write one text frame, whole, within ``send_timeout``; raises ConnectionClosed."""
        if not self.ws.connected:
            raise ConnectionClosed()
        try:
            data = self.ws.ws.send(TextMessage(data=text))
            self.ws.sock.sendall(data)
        except TimeoutError:
            self.write_timed_out = True
            abort_connection(self.ws)
            raise ConnectionClosed() from None
        except (OSError, LocalProtocolError):
            abort_connection(self.ws)
            raise ConnectionClosed() from None

    def close(self, code: int, reason: str) -> None:
        # simple-websocket marks the protocol closed before it writes the frame;
        # its reader, seeing that (at its next ping, say), ends the stream. The
        # write lock keeps it from doing so between the two.
        try:
            with self.ws.sock.write_lock:
                self.ws.close(reason=code, message=reason)
        except (ConnectionClosed, OSError, LocalProtocolError):
            pass

    # ---------------------------------------------------------- authentication

    def await_auth(self) -> tuple[Any, str] | None:
        """(actor, key) from the client's first message; None after closing with 4401."""
        raw = self.ws.receive(timeout=self.settings.auth_timeout)
        if raw is None:
            self.close(
                CLOSE_UNAUTHORIZED,
                'authentication timeout: send {"type": "auth", "api_key": ...} first',
            )
            return None
        request = _parse(raw)
        if not isinstance(request, dict) or request.get("type") != "auth":
            self.close(
                CLOSE_UNAUTHORIZED,
                'authentication required: send {"type": "auth", "api_key": ...} first',
            )
            return None
        key = request.get("api_key")
        if not isinstance(key, str):
            key = ""
        self.key_offered = bool(key)
        actor = self.authenticate(key) if key else None
        if actor is None:
            self.close(CLOSE_UNAUTHORIZED, "the API key is not valid")
            return None
        return actor, key

    # ---------------------------------------------------------- the session

    def serve(self, actor: Any, raw_key: str) -> str:
        """Stream snapshots and answer messages until the connection ends; returns why.

        The reason is a ``live_feed_disconnects_total`` label: ``closed`` (the
        client left), ``heartbeat`` (no pong), ``too_big`` (an oversize message),
        ``slow`` (frames not taken in time), ``bad_messages``, ``revoked`` (the
        key stopped being valid) or ``shutdown``.
        """
        subscriber = Subscriber(self.ws, actor, self.settings.queue_size)
        self.broadcaster.subscribe(subscriber)
        recheck_at = time.monotonic() + self._reauth_delay()
        try:
            self.send(
                message(
                    "welcome",
                    {
                        "actor": {"kind": actor.kind, "id": actor.id, "name": actor.name},
                        "interval": self.settings.interval,
                        "ping_interval": self.settings.ping_interval,
                    },
                )
            )
            while True:
                if subscriber.drop_reason is not None:
                    break
                if time.monotonic() >= recheck_at:
                    recheck_at = time.monotonic() + self._reauth_delay()
                    if not self.still_valid(raw_key, actor):
                        subscriber.drop_reason = "revoked"
                        self.close(CLOSE_UNAUTHORIZED, "the API key is no longer valid")
                        break
                # Woken by an incoming message (reader thread), a queued frame
                # (broadcaster), a drop or shutdown; else when the key is due a check.
                self.ws.event.wait(timeout=max(recheck_at - time.monotonic(), 0))
                self.ws.event.clear()
                for _ in range(MAX_MESSAGES_PER_WAKEUP):
                    raw = self.ws.receive(timeout=0)
                    if raw is None:
                        break
                    self.handle(raw, subscriber)
                else:
                    self.ws.event.set()  # more are waiting: serve the queue first, then them
                while True:
                    try:
                        frame = subscriber.frames.get_nowait()
                    except queue.Empty:
                        break
                    self.send(frame)
        except ConnectionClosed:
            pass
        finally:
            self.broadcaster.unsubscribe(subscriber)
        reason = subscriber.drop_reason or self._ending()
        if reason == "shutdown":
            self.close(CLOSE_GOING_AWAY, "server shutting down")
        # A slow client was cut off already; otherwise the closing handshake is
        # under way (our close frame or the reader's answer to the client's) and
        # finish() gives it a moment.
        return reason

    def _ending(self) -> str:
        """Why the connection ended on its own: the client left, or the reader closed it."""
        if self.write_timed_out:
            return "slow"
        if self.ws.ws.state is ConnectionState.LOCAL_CLOSING:
            # simple-websocket's reader sent a close frame: an oversize message
            # (1009) or no pong since the last ping (1008).
            max_size = self.settings.max_message_size
            return "too_big" if self.ws.incoming_message_len > max_size else "heartbeat"
        return "closed"

    def _reauth_delay(self) -> float:
        # Spread over +-10 %: clients that connected together (after a restart)
        # do not all query the database at the same moment, interval after interval.
        return self.settings.reauth_interval * random.uniform(0.9, 1.1)

    def still_valid(self, raw_key: str, actor: Any) -> bool:
        """Whether ``raw_key`` still names ``actor`` (not revoked, owner still active).

        A database that cannot be reached is no reason to cut a client off:
        the check is tried again after the next ``reauth_interval``.
        """
        try:
            current = self.authenticate(raw_key)
        except Exception:
            log.warning("live feed: re-checking an API key failed", exc_info=True)
            return True
        return current is not None and (current.kind, current.id) == (actor.kind, actor.id)

    def finish(self, linger: float = 1.0) -> None:
        """Make sure the connection and its reader thread are gone before returning.

        After our close frame the client has ``linger`` seconds to answer it
        (the reader thread then ends by itself); otherwise the connection is
        cut. So no thread outlives its connection, and the server's own close
        never waits on a dead client.
        """
        thread = getattr(self.ws, "thread", None)
        if thread is None:
            return
        thread.join(linger)
        if thread.is_alive():
            abort_connection(self.ws)
            thread.join(self.settings.send_timeout + 1)

    def handle(self, raw: Any, subscriber: Subscriber) -> None:
        request = _parse(raw)
        kind = request.get("type") if isinstance(request, dict) else None
        if not isinstance(kind, str):
            kind = None
        if kind == "get_metrics":
            snap = self.broadcaster.latest(timeout=self.settings.query_timeout * 2 + 1)
            if snap is None:
                self.send(error_message("unavailable", "no snapshot has been taken yet"))
            else:
                self.send(self.broadcaster.frame("metrics", snap, subscriber.view_key))
        elif kind == "ping":
            self.send(message("pong"))
        elif kind == "auth":
            self.send(error_message("already_authenticated", "this connection is authenticated"))
        else:
            self.invalid += 1
            if isinstance(raw, bytes):
                code, text = "bad_message", "only JSON text messages are accepted"
            elif request is None and raw.strip() != "null":
                code, text = "bad_message", "the message is not valid JSON"
            elif kind is None:
                code, text = "bad_message", 'a message is a JSON object with a "type"'
            else:
                code, text = "unknown_type", "known types: get_metrics, ping"
            self.send(error_message(code, text))
            if self.invalid >= MAX_INVALID_MESSAGES:
                subscriber.drop_reason = "bad_messages"
                self.close(CLOSE_POLICY, "too many invalid messages")
                raise ConnectionClosed()


def _parse(raw: Any) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def record_disconnect(reason: str) -> None:
    DISCONNECTS.labels(reason).inc()
