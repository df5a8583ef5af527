"""Render alertmanager.yml for an environment other than docker-compose.

The shipped ``alertmanager/alertmanager.yml`` is used as is by the compose
stack: secrets come from files under ``/etc/alertmanager/secrets``, mail goes
to the compose mail catcher.  Alertmanager 0.25 has no ``*_file`` setting for
the SMTP smarthost or for webhook URLs, so an environment that needs other
values renders a copy; the copy keeps every route, receiver and inhibit rule
and changes only what is named here:

- ``secrets_dir``: the folder the ``*_file`` settings point into;
- ``smtp_smarthost``, ``smtp_from``, ``smtp_require_tls``;
- ``webhook_urls``: receiver name -> URL of that receiver's webhook;
- ``email_to``: receiver name -> address of that receiver's email;
- ``extra_webhook_urls``: receiver name -> more URLs, each a copy of that
  receiver's (first) webhook config with that URL (the partner-alerts receiver
  on every ticket-service instance; its de-duplication makes that safe);

  (a new URL or address also replaces the shipped one wherever else it
  appears: ``oncall-critical`` and ``oncall-critical-events`` share the on-call
  webhook and address, ``support`` and ``support-events`` the support address,
  so naming one receiver is enough);
- ``timings``: ``group_wait`` / ``group_interval`` / ``repeat_interval``
  values that replace the shipped ones wherever they are set (short
  intervals for tests and demos).

Template paths become absolute, so the copy may be written anywhere.

From Python (tests, the local runner)::

    from alertmanager.render import render
    text = render(secrets_dir=tmp / "secrets", smtp_smarthost=sink.address,
                  webhook_urls={"oncall-critical": url, "heartbeat": url2})

From the shell, with flags or the matching environment variables
(``ALERTMANAGER_SECRETS_DIR``, ``ALERTMANAGER_SMTP_SMARTHOST``,
``ALERTMANAGER_SMTP_FROM``, ``ALERTMANAGER_SMTP_REQUIRE_TLS``,
``ALERTMANAGER_WEBHOOK_<RECEIVER>``, ``ALERTMANAGER_EMAIL_<RECEIVER>``,
``ALERTMANAGER_EXTRA_WEBHOOKS_<RECEIVER>`` (comma-separated URLs) with the
receiver name upper-cased and ``-`` as ``_``)::

    python -m alertmanager.render --secrets-dir /run/secrets \\
        --smtp-smarthost smtp.example.org:587 --smtp-require-tls true \\
        --webhook oncall-critical=https://pager.example.org/hook \\
        --out /etc/alertmanager/alertmanager.yml
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "alertmanager.yml"
#: The folder the shipped config reads its secret files from.
SHIPPED_SECRETS_DIR = "/etc/alertmanager/secrets"
TIMINGS = ("group_wait", "group_interval", "repeat_interval")


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values out in full (no &anchors), like the file reads."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class RenderError(ValueError):
    """A requested change names something the config does not have."""


def render(
    source: Path = CONFIG,
    *,
    secrets_dir: str | Path | None = None,
    smtp_smarthost: str | None = None,
    smtp_from: str | None = None,
    smtp_require_tls: bool | None = None,
    webhook_urls: Mapping[str, str] | None = None,
    email_to: Mapping[str, str] | None = None,
    extra_webhook_urls: Mapping[str, Sequence[str]] | None = None,
    timings: Mapping[str, str] | None = None,
) -> str:
    """Return the YAML text of ``source`` with the given changes applied."""
    source = Path(source).resolve()
    config = yaml.safe_load(source.read_text())

    config["templates"] = [
        str(source.parent / t) if not os.path.isabs(t) else t for t in config.get("templates", [])
    ]
    if secrets_dir is not None:
        _move_secret_files(config, str(Path(secrets_dir).resolve()))
    glob = config.setdefault("global", {})
    if smtp_smarthost is not None:
        glob["smtp_smarthost"] = smtp_smarthost
    if smtp_from is not None:
        glob["smtp_from"] = smtp_from
    if smtp_require_tls is not None:
        glob["smtp_require_tls"] = bool(smtp_require_tls)
    receivers = {r["name"]: r for r in config.get("receivers", [])}
    _replace(receivers, "webhook_configs", "url", webhook_urls or {})
    _replace(receivers, "email_configs", "to", email_to or {})
    for name, urls in (extra_webhook_urls or {}).items():
        configs = _integrations(receivers, name, "webhook_configs")
        known = {c["url"] for c in configs}
        for url in urls:
            if url and url not in known:
                configs.append({**copy.deepcopy(configs[0]), "url": url})
                known.add(url)
    if timings:
        unknown = set(timings) - set(TIMINGS)
        if unknown:
            raise RenderError(
                f"timings: unknown setting(s) {sorted(unknown)}; allowed: {', '.join(TIMINGS)}"
            )
        _retime(config["route"], timings, root=True)

    header = f"# Rendered from {source} by alertmanager/render.py; edit that file instead.\n"
    return header + yaml.dump(
        config, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=1000
    )


def _replace(receivers: dict[str, dict], kind: str, key: str, new: Mapping[str, str]) -> None:
    """Set ``key`` of the named receivers' ``kind`` configs, and wherever the old value recurs."""
    by_old_value: dict[str, str] = {}
    for name, value in new.items():
        for integration in _integrations(receivers, name, kind):
            by_old_value.setdefault(integration[key], value)
            integration[key] = value
    for name, receiver in receivers.items():
        if name in new:
            continue
        for integration in receiver.get(kind) or []:
            if integration.get(key) in by_old_value:
                integration[key] = by_old_value[integration[key]]


def _integrations(receivers: dict[str, dict], name: str, kind: str) -> list[dict]:
    if name not in receivers:
        raise RenderError(f"receiver {name!r} does not exist; receivers: {', '.join(receivers)}")
    found = receivers[name].get(kind) or []
    if not found:
        raise RenderError(f"receiver {name!r} has no {kind}")
    return found


def _move_secret_files(node: Any, secrets_dir: str) -> None:
    """Point every ``*_file`` setting under the shipped secrets folder into ``secrets_dir``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key.endswith("_file")
                and isinstance(value, str)
                and value.startswith(SHIPPED_SECRETS_DIR + "/")
            ):
                node[key] = secrets_dir + value[len(SHIPPED_SECRETS_DIR) :]
            else:
                _move_secret_files(value, secrets_dir)
    elif isinstance(node, list):
        for item in node:
            _move_secret_files(item, secrets_dir)


def _retime(route: dict, timings: Mapping[str, str], root: bool) -> None:
    for key, value in timings.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []):
        _retime(child, timings, root=False)


def _pairs(values: list[str], env_prefix: str, what: str) -> dict[str, str]:
    """``NAME=VALUE`` flags, after ``<env_prefix><NAME>`` environment variables."""
    found = {
        key[len(env_prefix) :].lower().replace("_", "-"): value
        for key, value in os.environ.items()
        if key.startswith(env_prefix) and value
    }
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"--{what}: expected RECEIVER=VALUE, got {item!r}")
        found[name] = value
    return found


def _lists(values: list[str], env_prefix: str) -> dict[str, list[str]]:
    """``RECEIVER=URL`` flags, after ``<env_prefix><RECEIVER>`` variables (comma-separated)."""
    found: dict[str, list[str]] = {
        key[len(env_prefix) :].lower().replace("_", "-"): [
            url.strip() for url in value.split(",") if url.strip()
        ]
        for key, value in os.environ.items()
        if key.startswith(env_prefix) and value.strip()
    }
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"--extra-webhook: expected RECEIVER=URL, got {item!r}")
        found.setdefault(name, []).append(value)
    return found


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m alertmanager.render",
        description="Write alertmanager.yml for an environment (secrets folder, SMTP relay, "
        "webhook URLs). Flags default to ALERTMANAGER_* environment variables.",
    )
    parser.add_argument("--source", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, help="output file (default: standard output)")
    parser.add_argument("--secrets-dir", default=env("ALERTMANAGER_SECRETS_DIR"))
    parser.add_argument("--smtp-smarthost", default=env("ALERTMANAGER_SMTP_SMARTHOST"))
    parser.add_argument("--smtp-from", default=env("ALERTMANAGER_SMTP_FROM"))
    parser.add_argument(
        "--smtp-require-tls",
        choices=["true", "false"],
        default=env("ALERTMANAGER_SMTP_REQUIRE_TLS"),
    )
    parser.add_argument("--webhook", action="append", default=[], metavar="RECEIVER=URL")
    parser.add_argument("--email", action="append", default=[], metavar="RECEIVER=ADDRESS")
    parser.add_argument(
        "--extra-webhook",
        action="append",
        default=[],
        metavar="RECEIVER=URL",
        help="another webhook config of RECEIVER, a copy of its first with this URL",
    )
    args = parser.parse_args(argv)
    try:
        text = render(
            args.source,
            secrets_dir=args.secrets_dir,
            smtp_smarthost=args.smtp_smarthost,
            smtp_from=args.smtp_from,
            smtp_require_tls=None
            if args.smtp_require_tls is None
            else args.smtp_require_tls == "true",
            webhook_urls=_pairs(args.webhook, "ALERTMANAGER_WEBHOOK_", "webhook"),
            email_to=_pairs(args.email, "ALERTMANAGER_EMAIL_", "email"),
            extra_webhook_urls=_lists(args.extra_webhook, "ALERTMANAGER_EXTRA_WEBHOOKS_"),
        )
    except RenderError as exc:
        print(f"alertmanager.render: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
