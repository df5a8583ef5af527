"""The ``classifier`` section of ticketing.yml, validated into a frozen object.

    classifier:
      enabled: true            # false: keyword rules only, as before the model
      model: null              # a model file; null: the one shipped in the package
      override_rules_at: 0.4   # the model's category replaces a keyword decision
                               # when the model gives it at least this probability
      triage_below: 0.4        # a decision less confident than this marks the
                               # ticket for triage in the staff queue

Problems are reported one per line with their location, as for every section:
``classifier.triage_below: must be a number between 0 and 1 (got 2)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ticketing.config import Checker, ConfigError

from .text_model import SHIPPED_MODEL


class ClassifierConfigError(ConfigError):
    """An invalid ``classifier`` section; ``problems`` lists ``location: message`` lines."""


@dataclass(frozen=True)
class ClassifierSettings:
    enabled: bool = True
    model_path: Path = SHIPPED_MODEL
    override_rules_at: float = 0.4
    triage_below: float = 0.4


_KEYS = {"enabled", "model", "override_rules_at", "triage_below"}


def _probability(c: Checker, value: Any, location: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        c.fail(location, f"must be a number between 0 and 1 (got {value!r})")
        return default
    return float(value)


def check_section(sections: Mapping[str, Any]) -> ClassifierSettings:
    """The checked ``classifier`` section (defaults when absent)."""
    c = Checker(ClassifierConfigError)
    section = c.section(sections.get("classifier"), "classifier", _KEYS)
    defaults = ClassifierSettings()
    enabled = c.boolean(section.get("enabled"), "classifier.enabled", default=True)
    model = section.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        c.fail("classifier.model", f"must be the path of a model file or null (got {model!r})")
        model = None
    settings = ClassifierSettings(
        enabled=bool(enabled),
        model_path=Path(model).expanduser() if model else defaults.model_path,
        override_rules_at=_probability(c, section.get("override_rules_at"),
                                       "classifier.override_rules_at",
                                       defaults.override_rules_at),
        triage_below=_probability(c, section.get("triage_below"), "classifier.triage_below",
                                  defaults.triage_below))
    c.raise_problems()
    return settings
