"""The ``classifier`` section of ticketing.yml, validated into a frozen object.

    classifier:
      enabled: true            # false: keyword rules only, as before the model
      model: null              # a model file; null: the one shipped in the package
      override_rules_at: 0.4   # the model's category replaces a keyword decision
                               # when the model gives it at least this probability
      triage_below: 0.4        # a decision less confident than this marks the
                               # ticket for triage in the staff queue
      raise_priority: true     # false: the priority model never raises a priority
                               # (the keyword rules still do)

Problems are reported one per line with their location, as for every section:
``classifier.triage_below: must be a number between 0 and 1 (got 2)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from sharedconfig import Flag, Section
from ticketing.config import ConfigError
from ticketing.desk.classifier.text_model import SHIPPED_MODEL


class ClassifierConfigError(ConfigError):
    """An invalid ``classifier`` section; ``problems`` lists ``location: message`` lines."""


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"must be a number between 0 and 1 (got {value!r})")
    return float(value)


def _model_file(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be the path of a model file or null (got {value!r})")
    return value


Probability = Annotated[float, PlainValidator(_probability)]
ModelFile = Annotated[str, PlainValidator(_model_file)]


class ClassifierSettings(Section):
    error = ClassifierConfigError

    enabled: Flag = True
    model_file: ModelFile | None = Field(None, alias="model")
    override_rules_at: Probability = 0.4
    triage_below: Probability = 0.4
    raise_priority: Flag = True

    @property
    def model_path(self) -> Path:
        """The model file to load: ``model`` when set, else the one shipped in the package."""
        return Path(self.model_file).expanduser() if self.model_file else SHIPPED_MODEL


def check_section(sections: Mapping[str, Any]) -> ClassifierSettings:
    """The checked ``classifier`` section (defaults when absent)."""
    return ClassifierSettings.load(sections.get("classifier"), "classifier")
