"""WebSocket clients for the live feed tests (websocket-client, as a bot would use)."""

from __future__ import annotations

import json
import struct
import time

import websocket


def connect(url: str, key: str | None = None, timeout: float = 10, **options):
    """A connection; ``key`` goes in the X-API-Key header of the upgrade request."""
    header = {"X-API-Key": key} if key else {}
    return websocket.create_connection(url, header=header, timeout=timeout, **options)


def receive(ws, timeout: float = 10) -> dict:
    """The next message, decoded (pings are answered by websocket-client itself)."""
    ws.settimeout(timeout)
    opcode, data = ws.recv_data(control_frame=False)
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        raise AssertionError(f"connection closed: {close_code(data)}")
    return json.loads(data)


def receive_type(ws, kind: str, timeout: float = 10, predicate=None) -> dict:
    """Skip messages until one of type ``kind`` (matching ``predicate``) arrives."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {kind!r} message in {timeout}s")
        message = receive(ws, remaining)
        if message["type"] == kind and (predicate is None or predicate(message)):
            return message


def close_code(data: bytes) -> tuple[int | None, str]:
    if len(data) < 2:
        return None, ""
    return struct.unpack("!H", data[:2])[0], data[2:].decode("utf-8", "replace")


def wait_closed(ws, timeout: float = 10) -> tuple[int | None, str]:
    """Read until the server's close frame; its (code, reason). (None, "") if the stream ends."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the server did not close the connection in {timeout}s")
        ws.settimeout(remaining)
        try:
            frame_opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            return None, ""
        except ConnectionError:
            return None, ""
        if frame_opcode == websocket.ABNF.OPCODE_CLOSE:
            return close_code(frame.data)
