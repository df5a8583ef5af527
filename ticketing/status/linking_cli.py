"""``partnerwatch-ticketing incidents evaluate-linking``: how well tickets are linked to incidents.

    partnerwatch-ticketing incidents evaluate-linking            # the shipped set
    partnerwatch-ticketing incidents evaluate-linking --set my.yml --show-misses

Scores every case of the labelled set (``linking_set.yml``: tickets filed during
25 incidents, each labelled related or not by a support lead) as a new ticket
would be scored: the category the partner chose, else the classifier's; the
configured components and thresholds. Prints the precision and recall of the
automatic links, how many related tickets were at least suggested, and how many
unrelated ones were. docs/status.md quotes the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from flask import current_app
from flask.cli import with_appcontext

from ticketing.status import linking
from ticketing.status.settings import LinkingSettings, StatusSettings

SHIPPED_SET = Path(__file__).with_name("linking_set.yml")


@dataclass(frozen=True)
class Report:
    cases: int
    related: int
    linked: int
    linked_related: int
    suggested_related: int
    suggested_unrelated: int
    misses: tuple[tuple[str, str, float, bool], ...]

    @property
    def precision(self) -> float:
        """Of the tickets linked automatically, the share that were related."""
        return self.linked_related / self.linked if self.linked else 1.0

    @property
    def recall(self) -> float:
        """Of the related tickets, the share linked automatically."""
        return self.linked_related / self.related if self.related else 1.0

    @property
    def reach(self) -> float:
        """Of the related tickets, the share linked or suggested to staff."""
        return (
            (self.linked_related + self.suggested_related) / self.related if self.related else 1.0
        )

    def lines(self) -> list[str]:
        unrelated = self.cases - self.related
        wrong = self.linked - self.linked_related
        return [
            f"{self.cases} tickets, {self.related} related to their incident, {unrelated} not",
            f"linked automatically: precision {self.precision:.1%} "
            f"({self.linked_related} of {self.linked}), recall {self.recall:.1%} "
            f"({self.linked_related} of {self.related})",
            f"linked or suggested to staff: {self.reach:.1%} of the related tickets",
            f"unrelated tickets: {wrong} linked, {self.suggested_unrelated} suggested "
            f"({(wrong + self.suggested_unrelated) / unrelated if unrelated else 0:.1%} "
            "shown to staff as possibly related)",
        ]


def load_set(path: Path) -> list[dict[str, Any]]:
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(cases, list):
        raise click.ClickException(f"{path}: expected a list of cases")
    return cases


@dataclass(frozen=True)
class Case:
    id: str
    values: dict[str, float]
    related: bool


def prepare(
    cases: Sequence[Mapping[str, Any]],
    components: StatusSettings,
    classify: Callable[[str, str], str],
) -> list[Case]:
    """Each case's signals against its incident, as a new ticket's are gathered
    (:func:`ticketing.status.incident_tickets.match_ticket`)."""
    prepared = []
    for case in cases:
        incident, ticket = case["incident"], case["ticket"]
        known = [c for c in (components.component(i) for i in incident["components"]) if c]
        category = ticket.get("category") or classify(ticket["title"], ticket["description"])
        values, _, _ = linking.incident_signals(
            linking.Text.of(ticket["title"], ticket["description"]),
            ticket["title"],
            category,
            linking.OpenIncident(0, incident["title"], known),
            frozenset(case.get("partner_alerts") or ()),
        )
        prepared.append(Case(str(case["id"]), values, bool(case["related"])))
    return prepared


def _score(values: dict[str, float], weights: Mapping[str, float], bias: float) -> float:
    z = bias + sum(weights[name] * values[name] for name in linking.SIGNALS)
    return 1.0 / (1.0 + math.exp(-z))


def evaluate(
    cases: Sequence[Case],
    thresholds: LinkingSettings,
    weights: Mapping[str, float] = linking.WEIGHTS,
    bias: float = linking.BIAS,
) -> Report:
    """The decisions the weights give on ``cases``, against their labels."""
    related = linked = linked_related = suggested_related = suggested_unrelated = 0
    misses = []
    for case in cases:
        score = _score(case.values, weights, bias)
        decision = linking.decide(linking.Match(0, score, None), thresholds)
        related += case.related
        if decision == "link":
            linked += 1
            linked_related += case.related
        elif decision == "suggest":
            suggested_related += case.related
            suggested_unrelated += not case.related
        if (decision == "link") != case.related:
            misses.append((case.id, decision, score, case.related))
    return Report(
        len(cases),
        related,
        linked,
        linked_related,
        suggested_related,
        suggested_unrelated,
        tuple(misses),
    )


def fit(cases: Sequence[Case]) -> tuple[dict[str, float], float]:
    """Logistic regression (scikit-learn, L2) of the labels on the signals."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(
        [[c.values[name] for name in linking.SIGNALS] for c in cases], [c.related for c in cases]
    )
    weights = {
        name: round(float(w), 2) for name, w in zip(linking.SIGNALS, model.coef_[0], strict=True)
    }
    return weights, round(float(model.intercept_[0]), 2)


def cross_validated(cases: Sequence[Case], thresholds: LinkingSettings, folds: int = 5) -> Report:
    """Each case decided by weights fitted on the other folds (stratified, fixed seed):
    what the signals do on tickets the weights never saw."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=7)
    reports = []
    labels = [c.related for c in cases]
    for train, test in splitter.split(labels, labels):
        weights, bias = fit([cases[i] for i in train])
        reports.append(evaluate([cases[i] for i in test], thresholds, weights, bias))
    return Report(
        sum(r.cases for r in reports),
        sum(r.related for r in reports),
        sum(r.linked for r in reports),
        sum(r.linked_related for r in reports),
        sum(r.suggested_related for r in reports),
        sum(r.suggested_unrelated for r in reports),
        tuple(m for r in reports for m in r.misses),
    )


@click.group("incidents")
def incidents_cli() -> None:
    """Status incidents: how tickets are linked to them."""


@incidents_cli.command("evaluate-linking")
@click.option("--set", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="a labelled set (default: the shipped linking_set.yml)")  # fmt: skip
@click.option("--show-misses", is_flag=True, help="list the cases decided against their label")
@click.option("--fit", "refit", is_flag=True, help="print weights fitted on the whole set")
@with_appcontext
def evaluate_linking(path: Path | None, show_misses: bool, refit: bool) -> None:
    """Precision and recall of the automatic links on a labelled set."""
    from ticketing.desk.tickets import classifier

    state = current_app.extensions.get("status")
    if state is None:
        raise click.ClickException("the status page is disabled (status.enabled: false)")
    settings: StatusSettings = state.settings
    rules = classifier()
    cases = prepare(
        load_set(path or SHIPPED_SET),
        settings,
        lambda title, description: rules.classify(title, description).category,
    )
    report = evaluate(cases, settings.linking)
    click.echo("The shipped weights, on the whole set:")
    for line in report.lines():
        click.echo(f"  {line}")
    click.echo("Weights fitted on 4 of 5 folds, each fold decided by the others' (held out):")
    for line in cross_validated(cases, settings.linking).lines():
        click.echo(f"  {line}")
    if refit:
        weights, bias = fit(cases)
        click.echo(f"Fitted on the whole set: WEIGHTS = {weights}, BIAS = {bias}")
    if show_misses:
        for case_id, decision, score, is_related in report.misses:
            label = "related" if is_related else "unrelated"
            click.echo(f"  {case_id}: {label}, decided {decision} (score {score:.2f})")
