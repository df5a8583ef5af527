"""Local notification sinks for the demo: print every email, Slack message and webhook received.

Alertmanager in the local stack sends its email to an SMTP server and its Slack
and webhook notifications to an HTTP server, both run by this module instead of
a real mail relay or Slack.  Each notification is printed as a short block on
standard output and appended, as one JSON object per line, to a record file::

    python -m demo.sinks --smtp 127.0.0.1:1025 --http 127.0.0.1:8025 \\
        --record run/notifications.jsonl

HTTP paths: ``POST /partner/...`` is a demo partner's webhook endpoint (signed
partner events from the ticket service), ``POST /slack/...`` is read as a Slack
incoming-webhook message, any other ``POST`` as a webhook (Alertmanager's JSON
is summarised alert by alert); ``GET /notifications`` lists what was received,
``GET /healthz`` answers ``ok``.  The SMTP server accepts any message without authentication.

A record looks like ``{"channel": "webhook", "path": "/webhook/oncall",
"received_at": 1700000000.0, "summary": "...", "status": "firing",
"alertnames": ["EnergyPoolCritical"], "body": {...}}``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import json
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Recorder:
    """Prints each notification and appends it to the record file.

    Keeps them, too, for ``/notifications``.
    """

    def __init__(self, record: Path | None, out=None) -> None:
        self.record = record
        self.out = out or sys.stdout
        self.items: list[dict] = []
        self._lock = threading.Lock()

    def add(self, item: dict[str, Any], lines: list[str]) -> None:
        item.setdefault("received_at", time.time())
        stamp = time.strftime("%H:%M:%S", time.localtime(item["received_at"]))
        with self._lock:
            self.items.append(item)
            if self.record is not None:
                with open(self.record, "a") as fh:
                    fh.write(json.dumps(item, default=str) + "\n")
            text = "\n".join(f"    {line}" for line in lines[1:])
            self.out.write(f"[{stamp}] {lines[0]}\n" + (text + "\n" if text else ""))
            self.out.flush()

    def all(self) -> list[dict]:
        with self._lock:
            return list(self.items)


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(style|script|head)\b.*?</\1>", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def _labels(labels: dict[str, str]) -> str:
    name = labels.get("alertname", "?")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "alertname")
    return f"{name}{{{rest}}}" if rest else name


def describe_webhook(path: str, body: Any) -> tuple[dict, list[str]]:
    """A record and printable lines for a webhook post (Alertmanager's payload or any JSON)."""
    item: dict[str, Any] = {"channel": "webhook", "path": path, "body": body}
    if isinstance(body, dict) and isinstance(body.get("alerts"), list):
        alerts = [a for a in body["alerts"] if isinstance(a, dict)]
        item.update(
            status=body.get("status"),
            receiver=body.get("receiver"),
            alertnames=sorted({str(a.get("labels", {}).get("alertname", "?")) for a in alerts}),
        )
        lines = [
            f"WEBHOOK {path}  receiver={body.get('receiver')}  {str(body.get('status')).upper()}"
            f"  {len(alerts)} alert(s)"
        ]
        for alert in alerts[:10]:
            summary = (alert.get("annotations") or {}).get("summary", "")
            lines.append(
                f"{alert.get('status', '?'):9} {_labels(alert.get('labels') or {})}"
                + (f"  {summary}" if summary else "")
            )
        if item["alertnames"] == ["Watchdog"]:
            # The always-firing heartbeat: one line is enough.
            lines = [f"HEARTBEAT {path}  (Watchdog: the alerting pipeline works)"]
        item["summary"] = lines[0]
        return item, lines
    compact = json.dumps(body, default=str)
    lines = [f"WEBHOOK {path}", compact[:500]]
    item["summary"] = lines[0]
    return item, lines


def describe_partner_event(path: str, body: Any, headers: Any) -> tuple[dict, list[str]]:
    """A partner webhook delivery (docs/webhooks.md), as the demo partner's endpoint sees it."""
    item: dict[str, Any] = {"channel": "partner", "path": path, "body": body}
    event = body if isinstance(body, dict) else {}
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    what = data.get("summary") or data.get("to") or (data.get("message") or {}).get("body") or ""
    lines = [
        f"PARTNER WEBHOOK {path}  {event.get('type')}  event {event.get('id')}"
        f"  partner {event.get('partner_id')}",
        *(
            [f"  {data.get('alert')}: {what}"]
            if data.get("alert")
            else ([f"  {str(what)[:200]}"] if what else [])
        ),
        f"  signed: {headers.get('Partnerwatch-Signature', '(no signature)')}",
    ]
    item["summary"] = lines[0]
    return item, lines


def describe_slack(path: str, body: Any) -> tuple[dict, list[str]]:
    """A record and printable lines for a Slack incoming-webhook message."""
    item: dict[str, Any] = {"channel": "slack", "path": path, "body": body}
    body = body if isinstance(body, dict) else {"text": str(body)}
    parts = []
    for attachment in body.get("attachments") or []:
        if isinstance(attachment, dict):
            parts.extend(str(attachment.get(k)) for k in ("title", "text") if attachment.get(k))
    if body.get("text"):
        parts.insert(0, str(body["text"]))
    text = "\n".join(parts)
    item["text"] = text
    item["alertnames"] = sorted(
        set(re.findall(r"\b([A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+)\b", text))
    )
    lines = [f"SLACK {body.get('channel') or path}", *text.splitlines()[:12]]
    item["summary"] = " ".join(lines[:2])
    return item, lines


def describe_email(mail_from: str, rcpt_tos: list[str], content: bytes) -> tuple[dict, list[str]]:
    """A record and printable lines for an email (its subject and the start of its text)."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    texts, htmls = [], []
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            texts.append(part.get_content())
        elif part.get_content_type() == "text/html":
            htmls.append(_strip_html(part.get_content()))
    text = "\n".join(texts) or "\n".join(htmls)
    subject = str(message["Subject"] or "")
    item = {
        "channel": "email",
        "from": mail_from,
        "to": rcpt_tos,
        "subject": subject,
        "text": text[:20000],
        "alertnames": sorted(
            set(re.findall(r"\b([A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+)\b", subject + "\n" + text))
        ),
    }
    lines = [
        f"EMAIL to {', '.join(rcpt_tos)}: {subject}",
        *[line for line in text.splitlines() if line.strip()][:12],
    ]
    item["summary"] = lines[0]
    return item, lines


class SMTPHandler:
    """aiosmtpd handler: every message is accepted and recorded."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle_DATA(self, server, session, envelope):
        try:
            item, lines = describe_email(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
            )
        except Exception as exc:  # a message we cannot parse is still worth showing
            item, lines = (
                {"channel": "email", "summary": f"unreadable email: {exc}"},
                [f"EMAIL (unreadable: {exc})"],
            )
        self.recorder.add(item, lines)
        return "250 Message accepted for delivery"


def make_http_server(recorder: Recorder, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok")
            elif path == "/notifications":
                self._send(
                    200, json.dumps(recorder.all(), default=str).encode(), "application/json"
                )
            else:
                self._send(404, b"not found")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = self.headers.get("Content-Length") or "0"
            length = min(int(length), 1 << 20) if length.isdigit() else 0
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            if path == "/slack" or path.startswith("/slack/"):
                item, lines = describe_slack(path, body)
            elif path.startswith("/partner/"):
                item, lines = describe_partner_event(path, body, self.headers)
            else:
                item, lines = describe_webhook(path, body)
            recorder.add(item, lines)
            self._send(200, b"ok")

        do_PUT = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.sinks", description="Print the notifications Alertmanager sends."
    )
    parser.add_argument("--smtp", type=_address, default=("127.0.0.1", 1025), help="HOST:PORT")
    parser.add_argument("--http", type=_address, default=("127.0.0.1", 8025), help="HOST:PORT")
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        help="append each notification as a JSON line to this file",
    )
    args = parser.parse_args(argv)

    from aiosmtpd.controller import Controller

    recorder = Recorder(args.record)
    smtp = Controller(
        SMTPHandler(recorder), hostname=args.smtp[0], port=args.smtp[1], ready_timeout=10
    )
    smtp.start()
    web = make_http_server(recorder, *args.http)
    threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        web.shutdown()
        web.server_close()
        smtp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
