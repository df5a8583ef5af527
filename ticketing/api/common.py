"""Helpers shared by the partner and staff views."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, send_file
from werkzeug.datastructures import FileStorage

from ticketing.auth import Actor
from ticketing.db import db
from ticketing.desk import attachments as storage
from ticketing.desk import tickets
from ticketing.desk.metrics import run_after_commit
from ticketing.desk.queue import FILTERS
from ticketing.errors import not_found
from ticketing.models import Attachment, Ticket, utcnow


def filters_of(query: Mapping[str, Any]) -> dict[str, Any]:
    """The filters of a list query (what a cursor is bound to)."""
    return {name: query[name] for name in FILTERS if name in query}


def page_limit(query: Mapping[str, Any]) -> int:
    api = tickets.settings().api
    return min(query.get("limit") or api.default_page_size, api.max_page_size)


def store_attachment(
    ticket: Ticket, actor: Actor, upload: FileStorage, internal: bool
) -> Attachment:
    """Write the file, add its row and commit; the file is removed again if that fails."""
    tickets.check_open(ticket, "attach files")
    stored = storage.store(upload, tickets.settings().attachments)
    try:
        now = utcnow()
        attachment = Attachment(
            ticket_id=ticket.id,
            uploader_type=actor.kind,
            uploader_id=actor.id,
            internal=internal,
            filename=stored.filename,
            storage_name=stored.storage_name,
            content_type=stored.content_type,
            size=stored.size,
            sha256=stored.sha256,
            created_at=now,
        )
        db.session.add(attachment)
        if not internal:
            ticket.updated_at = now
        db.session.commit()
    except BaseException:
        storage.discard(stored.storage_name)
        raise
    run_after_commit()
    return attachment


def send_attachment(attachment: Attachment) -> Response:
    """The file as a forced download that browsers will not render or sniff."""
    path = storage.path_of(attachment.storage_name)
    if not path.is_file():
        raise not_found("attachment")
    response = send_file(
        path,
        mimetype=attachment.content_type,
        as_attachment=True,
        download_name=attachment.filename,
        conditional=False,
        etag=False,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response
