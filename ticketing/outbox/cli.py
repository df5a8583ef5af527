"""``flask outbox ...``: deliver and inspect the notification outbox.

flask outbox deliver --once   # one pass over the due messages, then exit
flask outbox deliver          # deliver in the foreground until interrupted
flask outbox status           # pending / delivered counts and the oldest pending
"""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from ticketing.db import db
from ticketing.outbox.models import OutboxMessage
from ticketing.outbox.store import pending_count

outbox_cli = AppGroup("outbox", help="Deliver and inspect the notification outbox.")


@outbox_cli.command("deliver")
@click.option(
    "--once", is_flag=True, help="Deliver what is due now and exit (status 1 if a delivery failed)."
)
def deliver_command(once: bool) -> None:
    """Post due notifications to Alertmanager."""
    settings = current_app.extensions["outbox"].settings
    if once:
        report = current_app.extensions["outbox"].deliver()
        click.echo(f"{report}; pending {pending_count()}")
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        if report.failed:
            raise SystemExit(1)
        return
    click.echo(f"delivering to {', '.join(settings.alertmanager_urls)} (Ctrl-C stops)")
    try:
        while True:
            try:
                report = current_app.extensions["outbox"].deliver()
                if report.attempted:
                    click.echo(f"{report}; pending {pending_count()}")
            except Exception as exc:  # the database may be away for a while: keep going
                db.session.remove()
                click.echo(f"error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
            time.sleep(settings.poll_interval)
    except KeyboardInterrupt:
        pass


@outbox_cli.command("status")
def status_command() -> None:
    """Show the backlog."""
    delivered = db.session.execute(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.delivered_at.is_not(None))
    ).scalar_one()
    click.echo(f"pending {pending_count()}, delivered {delivered}")
    oldest = (
        db.session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None))
            .order_by(OutboxMessage.created_at)
            .limit(10)
        )
        .scalars()
        .all()
    )
    for message in oldest:
        click.echo(
            f"  {message.id} {message.kind} {message.dedup_key} created {message.created_at}"
            f" attempts {message.attempts} next {message.next_attempt_at}"
            + (f" last error: {message.last_error}" if message.last_error else "")
        )
