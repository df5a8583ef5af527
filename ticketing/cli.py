"""Command line: partners, staff, API keys and database migrations.

Available as ``partnerwatch-ticketing <command>`` (console script) or
``flask --app ticketing <command>``:

    partnerwatch-ticketing db upgrade                 # create / migrate the schema
    partnerwatch-ticketing create-partner "Acme Energy"         # prints the partner id
    partnerwatch-ticketing create-staff "Sam Agent" sam@example.org --role agent
    partnerwatch-ticketing create-key --partner 1 --name "acme prod"   # prints the key ONCE
    partnerwatch-ticketing list-keys
    partnerwatch-ticketing revoke-key 3f9c0a1b2c4d    # by prefix (or the whole key)
    partnerwatch-ticketing classifier evaluate        # held-out accuracy of the category model
    partnerwatch-ticketing classifier train           # retrain it with staff overrides

Commands that create something print only its id (or the key) on stdout, so
scripts can capture it: ``KEY=$(partnerwatch-ticketing create-key --partner 1)``.
"""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from .auth import issue_key, key_prefix
from .choices import PARTNER_STATUSES, STAFF_ROLES
from .db import db
from .models import ApiKey, Partner, Staff, utcnow


@click.command("create-partner")
@with_appcontext
@click.argument("name")
@click.option("--status", type=click.Choice(PARTNER_STATUSES), default="active",
              show_default=True)
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
        owner = (f"partner:{key.partner_id}" if key.partner_id is not None
                 else f"staff:{key.staff_id}")
        fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else "-"  # noqa: E731
        click.echo("\t".join([key.prefix, owner, key.name or "-", fmt(key.created_at),
                              fmt(key.last_used_at),
                              "revoked " + fmt(key.revoked_at) if key.revoked_at else "active"]))


COMMANDS = (create_partner, create_staff, create_key, revoke_key, list_keys)


def init_app(app: Flask) -> None:
    from .classifier.cli import classifier

    for command in (*COMMANDS, classifier):
        app.cli.add_command(command)


def _create_app():
    from . import create_app

    return create_app()


#: The ``partnerwatch-ticketing`` console script (Flask's CLI, with ``db`` and ``run``).
main = FlaskGroup(create_app=_create_app, add_version_option=False,
                  help="partnerwatch ticket service: partners, staff, keys, migrations, "
                       "the category model.")
