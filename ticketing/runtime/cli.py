"""Command line: partners, staff, API keys and database migrations.

Available as ``partnerwatch-ticketing <command>`` (console script) or
``flask --app ticketing <command>``:

    partnerwatch-ticketing db upgrade                 # create / migrate the schema
    partnerwatch-ticketing create-partner "Acme Energy"         # prints the partner id
    partnerwatch-ticketing create-staff "Sam Agent" sam@example.org --role agent
    partnerwatch-ticketing create-key --partner 1 --name "acme prod"   # prints the key ONCE
    partnerwatch-ticketing list-keys
    partnerwatch-ticketing revoke-key 3f9c0a1b2c4d    # by prefix (or the whole key)
    partnerwatch-ticketing check-config deploy/ticketing.yml # exit 0: valid; 2: one line a problem
    partnerwatch-ticketing classifier evaluate        # held-out accuracy of the category model
    partnerwatch-ticketing classifier train           # retrain it with staff overrides
    partnerwatch-ticketing incidents evaluate-linking # precision and recall of ticket links

Commands that create something print only its id (or the key) on stdout, so
scripts can capture it: ``KEY=$(partnerwatch-ticketing create-key --partner 1)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from ticketing.auth import issue_key, key_prefix
from ticketing.db import db
from ticketing.desk.choices import PARTNER_STATUSES, STAFF_ROLES
from ticketing.models import ApiKey, Partner, Staff, utcnow


@click.command("create-partner")
@with_appcontext
@click.argument("name")
@click.option("--status", type=click.Choice(PARTNER_STATUSES), default="active", show_default=True)
def create_partner(name: str, status: str) -> None:
    """Create a partner; prints its id."""
    partner = Partner(name=name, status=status)
    db.session.add(partner)
    db.session.commit()
    click.echo(partner.id)


@click.command("create-staff")
@with_appcontext
@click.argument("name")
@click.argument("email")
@click.option("--role", type=click.Choice(STAFF_ROLES), default="agent", show_default=True)
def create_staff(name: str, email: str, role: str) -> None:
    """Create a support staff member; prints their id."""
    exists = db.session.execute(db.select(Staff.id).where(Staff.email == email)).first()
    if exists:
        raise click.ClickException(f"a staff member with email {email} already exists")
    staff = Staff(name=name, email=email, role=role)
    db.session.add(staff)
    db.session.commit()
    click.echo(staff.id)


@click.command("create-key")
@with_appcontext
@click.option("--partner", "partner_id", type=int, help="id of the partner owning the key")
@click.option("--staff", "staff_id", type=int, help="id of the staff member owning the key")
@click.option("--name", help="a label for the key (where it is used)")
def create_key(partner_id: int | None, staff_id: int | None, name: str | None) -> None:
    """Issue an API key; prints it once (only its hash is stored)."""
    if (partner_id is None) == (staff_id is None):
        raise click.UsageError("give exactly one of --partner or --staff")
    if partner_id is not None:
        partner = db.session.get(Partner, partner_id)
        if partner is None:
            raise click.ClickException(f"no partner with id {partner_id}")
        key, raw = issue_key(partner=partner, name=name)
    else:
        staff = db.session.get(Staff, staff_id)
        if staff is None:
            raise click.ClickException(f"no staff member with id {staff_id}")
        key, raw = issue_key(staff=staff, name=name)
    db.session.commit()
    click.echo(f"key {key.prefix} created; store it now, it is not shown again", err=True)
    click.echo(raw)


@click.command("revoke-key")
@with_appcontext
@click.argument("prefix")
def revoke_key(prefix: str) -> None:
    """Revoke a key, given its prefix (or the whole key)."""
    prefix = key_prefix(prefix) or prefix
    key = db.session.execute(db.select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if key is None:
        raise click.ClickException(f"no key with prefix {prefix}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    click.echo(f"key {prefix} revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


@click.command("list-keys")
@with_appcontext
def list_keys() -> None:
    """List keys: prefix, owner, label, created, last used, revoked."""
    keys = db.session.execute(db.select(ApiKey).order_by(ApiKey.id)).scalars()
    for key in keys:
        owner = (
            f"partner:{key.partner_id}" if key.partner_id is not None else f"staff:{key.staff_id}"
        )

        def fmt(t: datetime | None) -> str:
            return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else "-"

        click.echo(
            "\t".join(
                [
                    key.prefix,
                    owner,
                    key.name or "-",
                    fmt(key.created_at),
                    fmt(key.last_used_at),
                    "revoked " + fmt(key.revoked_at) if key.revoked_at else "active",
                ]
            )
        )


COMMANDS = (create_partner, create_staff, create_key, revoke_key, list_keys)


def init_app(app: Flask) -> None:
    from ticketing.desk.classifier.cli import classifier
    from ticketing.status.linking_cli import incidents_cli

    for command in (*COMMANDS, classifier, incidents_cli):
        app.cli.add_command(command)


@click.command("check-config")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def check_config(file: str | None) -> None:
    """Check a configuration file (default: $TICKETING_CONFIG) merged over the shipped one.

    Every section is checked as the service checks it at start, without
    starting anything: exit status 0 and a short summary when it is valid, 2
    and one ``location: problem`` line per problem on stderr when it is not.
    """
    from ticketing.config import ConfigError, check_config, load_sections

    file = file or os.environ.get("TICKETING_CONFIG") or None
    try:
        settings = check_config(load_sections(file))
    except ConfigError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        sys.exit(2)
    click.echo(f"{file or 'ticketing.yml (shipped defaults)'}: configuration OK")
    for line in config_summary(settings):
        click.echo(line)


def config_summary(settings: Mapping[str, Any]) -> list[str]:
    """A few lines saying what the checked configuration will do."""
    from sharedconfig import format_duration

    sla = settings["sla"]
    outbox, live, limits = settings["outbox"], settings["live"], settings["ratelimits"]
    return [
        f"classification: {len(settings['classification'].priority_rules)} priority rules, "
        f"{len(settings['classification'].category_rules)} categories",
        "sla first response: "
        + ", ".join(
            f"{p} {format_duration(t.total_seconds())}" for p, t in sla.first_response.items()
        ),
        f"ratelimits: {'on' if limits.enabled else 'off'}, "
        + ", ".join(f"{a} {r}" for a, r in limits.limits.items()),
        f"outbox: worker {'on' if outbox.worker else 'off'}, to "
        + ", ".join(outbox.alertmanager_urls),
        "live: "
        + (
            f"every {format_duration(live.interval)}, up to {live.max_clients} clients per process"
            if live.enabled
            else "off"
        ),
    ]


def _create_app() -> Flask:
    from ticketing import create_app

    return create_app()


#: The ``partnerwatch-ticketing`` console script (Flask's CLI, with ``db`` and ``run``).
main = FlaskGroup(
    create_app=_create_app,
    add_version_option=False,
    help="partnerwatch ticket service: partners, staff, keys, migrations, the category model.",
)
# Not an app command: it must work, and say why, when the app cannot start.
main.add_command(check_config)
