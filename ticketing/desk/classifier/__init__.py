"""The category and priority models: small text classifiers that decide what keyword
rules cannot (the category), and raise a priority the text calls for (never lower it).

- :mod:`.text_model`: the fitted models as the service uses them, scored in plain
  Python from one compact file (``model.json.gz``, shipped in the package);
- :mod:`.training`: training and evaluation with scikit-learn, for the
  ``partnerwatch-ticketing classifier`` commands (:mod:`.cli`) only;
- :mod:`.settings`: the ``classifier`` section of ticketing.yml;
- ``corpus/``: the labelled tickets it learns from (``corpus/README.md``).

How the rules and the model combine is in :mod:`ticketing.desk.triage`.
``init_app`` checks the section and loads the model once per process, so a
broken model file stops the service at start-up with one line saying why.
"""

from __future__ import annotations

from flask import Flask

from ticketing.config import ConfigError
from ticketing.desk.classifier.settings import ClassifierSettings, check_section
from ticketing.desk.classifier.text_model import ModelError, TextModel, load_model

SETTINGS_KEY = "ticketing_classifier_settings"
MODEL_KEY = "ticketing_model"


def init_app(app: Flask) -> None:
    settings = check_section(app.config["TICKETING"])
    app.extensions[SETTINGS_KEY] = settings
    model = None
    if settings.enabled:
        try:
            model = load_model(settings.model_path)
        except ModelError as exc:
            raise ConfigError([f"classifier.model: {exc}"]) from None
    app.extensions[MODEL_KEY] = model


def model_of(app: Flask) -> tuple[TextModel | None, ClassifierSettings | None]:
    return app.extensions.get(MODEL_KEY), app.extensions.get(SETTINGS_KEY)


__all__ = ["ClassifierSettings", "ModelError", "TextModel", "init_app", "load_model", "model_of"]
