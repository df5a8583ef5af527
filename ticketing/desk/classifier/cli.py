"""``partnerwatch-ticketing classifier evaluate|train``: measure and retrain the category and
priority models (one model file holds both).

    partnerwatch-ticketing classifier evaluate            # the shipped corpus
    partnerwatch-ticketing classifier evaluate --overrides  # ... plus staff overrides
    partnerwatch-ticketing classifier train               # corpus + staff overrides ->
                                                          # the configured model file
    partnerwatch-ticketing classifier train --output /var/lib/partnerwatch/model.json.gz

``train`` writes the new model with its evaluation only when it scores at least
as well as the current one (the model at ``--output`` if that file exists,
else the configured one); otherwise it exits with status 1 and changes nothing.
``--force`` writes it all the same: for a corpus that grew harder tickets, whose
score cannot be compared with the old corpus's. Both read the shipped glossary
(``glossary.yml``) unless ``--glossary`` names another; the model file keeps the
one it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import with_appcontext

from ticketing.desk.classifier.glossary import Glossary, GlossaryError
from ticketing.desk.classifier.settings import ClassifierSettings
from ticketing.desk.classifier.text_model import ModelError, TextModel, load_model

if TYPE_CHECKING:
    from ticketing.desk.classifier.training import Example
    from ticketing.desk.triage import Classifier


def _context() -> tuple[ClassifierSettings, Classifier]:
    from ticketing.desk.triage import Classifier

    settings: ClassifierSettings = current_app.extensions["ticketing_classifier_settings"]
    rules = Classifier(current_app.extensions["ticketing"].classification)
    return settings, rules


def _training() -> ModuleType:
    try:
        from ticketing.desk.classifier import training
    except ImportError as exc:  # scikit-learn is a dependency; say so if it is missing
        raise click.ClickException(f"training needs scikit-learn ({exc})") from None
    return training


def _corpus(training: ModuleType, path: str | None) -> list[Example]:
    try:
        corpus: list[Example] = training.load_corpus(path) if path else training.load_corpus()
        return corpus
    except (OSError, training.CorpusError) as exc:
        raise click.ClickException(str(exc)) from None


def _overrides(training: ModuleType) -> list[Example]:
    """The staff overrides of the audit trail; a database that cannot give them is an error
    saying what to do, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        overrides: list[Example] = training.staff_overrides()
        return overrides
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise click.ClickException(
            f"cannot read the staff overrides from the database ({reason}); migrate it "
            "(partnerwatch-ticketing db upgrade) or leave them out (--no-overrides)"
        ) from None


def _glossary(path: str | None) -> Glossary:
    try:
        return Glossary.load(path) if path else Glossary.load()
    except GlossaryError as exc:
        raise click.ClickException(str(exc)) from None


def _override_accuracy(model: TextModel, overrides: Sequence[Example]) -> str:
    if not overrides:
        return "-"
    right = 0
    for o in overrides:
        p = model.probabilities(o.title, o.description)
        right += max(p, key=p.__getitem__) == o.category
    return f"{100 * right / len(overrides):.1f} %"


#: The training data options both commands take.
corpus_option = click.option(
    "--corpus",
    "corpus_path",
    type=click.Path(dir_okay=False),
    help="a corpus file (default: the one shipped in the package)",
)
glossary_option = click.option(
    "--glossary",
    "glossary_path",
    type=click.Path(dir_okay=False),
    help="a glossary file (default: the one shipped in the package)",
)


@click.group("classifier")
def classifier() -> None:
    """The category and priority models: evaluate them, retrain from staff overrides."""


@classifier.command("evaluate")
@with_appcontext
@corpus_option
@click.option(
    "--overrides/--no-overrides",
    default=False,
    show_default=True,
    help="add the staff category overrides of the audit trail",
)
@glossary_option
def evaluate(corpus_path: str | None, overrides: bool, glossary_path: str | None) -> None:
    """Print held-out accuracy: a train/test split and k-fold cross-validation."""
    training = _training()
    settings, rules = _context()
    corpus = _corpus(training, corpus_path)
    glossary = _glossary(glossary_path)
    extra = _overrides(training) if overrides else []
    report = training.evaluate(
        corpus, extra, rules, settings.override_rules_at, settings.triage_below, glossary=glossary
    )
    for line in report.lines():
        click.echo(line)
    try:
        current = load_model(settings.model_path)
        recorded = current.evaluation.get("score")
        if recorded is not None:
            click.echo(f"current model ({settings.model_path}): score {100 * recorded:.1f} %")
    except ModelError as exc:
        click.echo(f"current model: {exc}", err=True)


@classifier.command("train")
@with_appcontext
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="where to write the model (default: the configured classifier.model)",
)
@corpus_option
@click.option(
    "--force",
    is_flag=True,
    help="write the new model even if it scores below the current one (a changed corpus)",
)
@click.option(
    "--overrides/--no-overrides",
    "use_overrides",
    default=True,
    show_default=True,
    help="learn from the staff category overrides of the audit trail too",
)
@glossary_option
def train(
    output: str | None,
    corpus_path: str | None,
    force: bool,
    use_overrides: bool,
    glossary_path: str | None,
) -> None:
    """Retrain from the corpus plus staff overrides; keep the result only if it scores
    no worse than the current model (or with --force)."""
    training = _training()
    settings, rules = _context()
    target = Path(output) if output else settings.model_path
    corpus = _corpus(training, corpus_path)
    glossary = _glossary(glossary_path)
    overrides = _overrides(training) if use_overrides else []
    click.echo(
        f"training on {len(corpus)} corpus tickets and {len(overrides)} staff overrides"
        f" (glossary: {glossary.terms} terms)"
    )
    report = training.evaluate(
        corpus,
        overrides,
        rules,
        settings.override_rules_at,
        settings.triage_below,
        glossary=glossary,
    )
    for line in report.lines():
        click.echo(line)

    current_path = target if target.exists() else settings.model_path
    current = None
    try:
        current = TextModel.load(current_path)
    except ModelError as exc:
        click.echo(f"no current model to compare with ({exc})")
    if current is not None:
        recorded = current.evaluation.get("score")
        click.echo(
            f"current model ({current_path}): score "
            + (f"{100 * recorded:.1f} %" if recorded is not None else "unknown")
            + f"; on the staff overrides {_override_accuracy(current, overrides)}"
        )
        same_corpus = current.evaluation.get("corpus_sha256") == report.corpus_sha256
        if not same_corpus:
            click.echo("note: the current model was evaluated on another corpus")
        if recorded is not None and report.score < recorded and force:
            click.echo(
                f"the new model scores {100 * report.score:.1f} %, below the current model's "
                f"{100 * recorded:.1f} %; written all the same (--force)"
            )
        elif recorded is not None and report.score < recorded:
            raise click.ClickException(
                f"refused: the new model scores {100 * report.score:.1f} %, worse than the "
                f"current model's {100 * recorded:.1f} %; {target} is unchanged"
            )
    data = training.fit(training.merge(corpus, overrides), glossary)
    data["evaluation"] = report.as_dict()
    target.parent.mkdir(parents=True, exist_ok=True)
    training.write_model(data, target)
    written = TextModel.load(target)  # what the service will read
    click.echo(
        f"wrote {target}: {written.terms} terms, {len(written.classes)} categories, "
        f"score {100 * report.score:.1f} %"
    )
