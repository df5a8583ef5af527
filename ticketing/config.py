"""Loading and checking the ticket service's YAML configuration.

The package ships ``ticketing/ticketing.yml`` with every default. A deployment
names its own file in the ``TICKETING_CONFIG`` environment variable; that file
is merged over the defaults (mappings key by key, everything else replaced).
The result is a plain mapping of sections, put on ``app.config["TICKETING"]``:

    sections = load_sections(os.environ.get("TICKETING_CONFIG"))
    sections["sla"]["first_response"]["high"]        # "2h"

Each section is a frozen pydantic model (:class:`sharedconfig.Section`, the
base the exporter's configuration shares): the core's in
:mod:`ticketing.desk.settings`, each extension's in its own ``settings.py``, all of
them listed in :data:`SECTIONS`. The core checks its sections in
``create_app``, every extension its own in ``init_app``;
:func:`check_config` checks them all at once (``partnerwatch-ticketing
check-config``). A problem stops the process with one line per problem,
naming where it is:

    ConfigError: invalid ticketing configuration:
      sla.first_response.high: must be a duration such as 15s, 500ms or 2m (got 'soon')
"""

from __future__ import annotations

import copy
import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sharedconfig

SHIPPED_CONFIG = Path(__file__).with_name("ticketing.yml")


#: Every section of ticketing.yml: its name -> "module:Model" (a sharedconfig.Section).
#: An extension adds its section here, one line (see sharedconfig).
SECTIONS = {
    "classification": "ticketing.desk.settings:ClassificationSettings",
    "sla": "ticketing.desk.settings:SlaSettings",
    "attachments": "ticketing.desk.settings:AttachmentSettings",
    "api": "ticketing.desk.settings:ApiSettings",
    "security": "ticketing.security.settings:SecuritySettings",
    "ratelimits": "ticketing.security.settings:RateLimitSettings",
    "outbox": "ticketing.outbox.settings:OutboxSettings",
    "live": "ticketing.live.settings:LiveSettings",
    "console": "ticketing.console.settings:ConsoleSettings",
    "webhooks": "ticketing.webhooks.settings:WebhooksSettings",
    "classifier": "ticketing.desk.classifier.settings:ClassifierSettings",
    "status": "ticketing.status.settings:StatusSettings",
}


class ConfigError(sharedconfig.ConfigError):
    """An invalid configuration; ``problems`` holds one ``location: message`` per problem."""

    title = "invalid ticketing configuration"


# ------------------------------------------------------------------ loading


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base``: mappings recursively, other values replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The sections in one file; ConfigError (one line) if it cannot be read or is no mapping."""
    data = sharedconfig.read_yaml(path, ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: must be a mapping of sections"])
    return data


def load_sections(
    override_path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The shipped defaults, merged with ``override_path`` and then ``overrides``."""
    sections = read_yaml(SHIPPED_CONFIG)
    if override_path:
        sections = deep_merge(sections, read_yaml(override_path))
    if overrides:
        sections = deep_merge(sections, overrides)
    return sections


# ------------------------------------------------------------------ checking


def section_model(name: str) -> type[sharedconfig.Section]:
    """The model registered for section ``name`` in :data:`SECTIONS`."""
    module, _, attr = SECTIONS[name].partition(":")
    model: type[sharedconfig.Section] = getattr(importlib.import_module(module), attr)
    return model


def check_sections(
    sections: Mapping[str, Any], names: Iterable[str], context: Mapping[str, Any] | None = None
) -> dict[str, sharedconfig.Section]:
    """The sections ``names`` of ``sections``, checked; ConfigError lists every problem of all.

    ``context`` reaches the models' validators: ``environ``, the environment
    that null settings fall back to (``ALERTMANAGER_URL``, ``REDIS_URL``).
    """
    checked, problems = {}, []
    for name in names:
        try:
            checked[name] = section_model(name).load(sections.get(name), name, context)
        except sharedconfig.ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return checked


def check_config(
    sections: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, sharedconfig.Section]:
    """Every section of :data:`SECTIONS`, checked as the app and its extensions check them.

    A top-level key that is no section is a problem too (a misspelt ``outbx:``
    would otherwise be ignored, its settings silently the defaults).
    """
    unknown = [
        f"{name}: unknown section (known: {', '.join(SECTIONS)})"
        for name in sections
        if name not in SECTIONS
    ]
    try:
        checked = check_sections(
            sections, SECTIONS, {"environ": os.environ if environ is None else environ}
        )
    except ConfigError as exc:
        raise ConfigError(exc.problems + unknown) from None
    if unknown:
        raise ConfigError(unknown)
    return checked
