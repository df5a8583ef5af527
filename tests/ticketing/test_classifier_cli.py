"""``partnerwatch-ticketing classifier evaluate|train``: the real console script, run
against a real database (SQLite and PostgreSQL) whose audit trail holds staff
category overrides."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.app import migrated_app, ticketing_config
from tests.harness.seed import Maker
from ticketing.desk.classifier import training
from ticketing.desk.classifier.text_model import SHIPPED_MODEL, TextModel

SCRIPT = str(Path(sys.executable).with_name("partnerwatch-ticketing"))


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SCRIPT, "classifier", *args], env=env, capture_output=True, text=True, timeout=600
    )


def percent(label: str, output: str) -> float:
    match = re.search(label + r"[^\n]*\n\s*category accuracy ([\d.]+) %", output)
    assert match, output
    return float(match.group(1))


def test_evaluate_prints_held_out_accuracy_and_priority_figures(tmp_path):
    """On a sixth of the shipped corpus (the shipped model's own figures, recorded at
    training on the whole corpus, are checked in test_classifier.py)."""
    env = {**os.environ, "TICKETING_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}
    result = run(env, "evaluate", "--corpus", str(_corpus(tmp_path, "sixth.txt")))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert percent(r"train/test split", out) >= 70.0
    assert percent(r"5-fold cross-validation", out) >= 70.0
    assert "keyword rules alone" in out and "per category:" in out
    assert len(re.findall(r"\d+\.\d %", out.split("per fold:")[1].splitlines()[0])) == 5
    # the priority figures beside the category's, on the same held-out folds
    floor = re.search(r"priority at or above its floor: ([\d.]+) %", out)
    assert floor and float(floor.group(1)) >= 90.0, out
    assert re.search(r"critical floor below high: \d+", out)
    assert re.search(r"priority too low, per floor: low [\d.]+ % of \d+, medium", out)
    assert re.search(r"routine questions: the \d+ with floor low", out)
    table = out.split("priority confusion (rows: floor, columns: decided):\n")[1].splitlines()
    assert table[0].split() == ["low", "medium", "high", "critical"]
    assert [row.split()[0] for row in table[1:5]] == ["low", "medium", "high", "critical"]
    languages = re.search(
        r"per language \(category accuracy; priority at or above floor\): (.*)", out
    )
    assert languages and all(f"{lang} " in languages.group(1) for lang in ("en", "de", "ko", "ja"))


def test_train_and_evaluate_say_what_is_wrong_without_a_traceback(tmp_path):
    """An unmigrated database (the staff overrides cannot be read) and a broken glossary
    are one clear line each, and no model is written."""
    target = tmp_path / "new.json.gz"
    env = {**os.environ, "TICKETING_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    part = str(_corpus(tmp_path, "sixth.txt"))
    result = run(env, "train", "--corpus", part, "--output", str(target))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot read the staff overrides from the database" in result.stderr
    assert "--no-overrides" in result.stderr and not target.exists()
    result = run(env, "evaluate", "--overrides", "--corpus", part)
    assert result.returncode == 1 and "cannot read the staff overrides" in result.stderr
    broken = tmp_path / "glossary.yml"
    broken.write_text("Invoice:\n  xx: [rechnung]\n")
    result = run(env, "evaluate", "--corpus", part, "--glossary", str(broken))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "glossary.yml.Invoice: a pivot is a lower-case English word" in result.stderr
    assert "glossary.yml.Invoice.xx: unknown language" in result.stderr


OVERRIDES = [  # (title, description, what staff set)
    ("Strange sign-in", "Someone signed in to our portal at 4am from a new device.", "security"),
    ("Payout went elsewhere", "The payout went to a wallet we do not know.", "security"),
    (
        "Cutover delayed our batch",
        "The ledger cutover left our batch waiting for hours.",
        "technical",
    ),
    ("Numbers frozen since noon", "Dashboard totals have not moved since noon.", "technical"),
    ("Quote for next year", "Could you send a quote for 300 MWh next year?", "billing"),
    ("Webinar recording", "Is the recording of last week's webinar available?", "other"),
]


@pytest.fixture
def database_with_overrides(db_url, tmp_path):
    """A migrated database with tickets whose category staff overrode (some twice)."""
    yield from _with_overrides(db_url, tmp_path)


@pytest.fixture
def sqlite_with_overrides(tmp_path):
    """The same on SQLite only: for what does not depend on the database."""
    yield from _with_overrides(f"sqlite:///{tmp_path / 'overrides.db'}", tmp_path)


def _with_overrides(db_url, tmp_path):
    config = ticketing_config(db_url, tmp_path)
    for app in migrated_app(config):
        client = app.test_client()
        make = Maker(app, client)
        acme, agent = make.partner(), make.staff()
        for title, description, category in OVERRIDES:
            ticket = make.ticket(acme, title=title, description=description)
            wrong = "energy" if category != "energy" else "api"
            for chosen in (wrong, category):  # the last override is the label
                r = client.patch(
                    f"/api/v1/staff/tickets/{ticket['id']}",
                    headers=agent.headers,
                    json={"category": chosen},
                )
                assert r.status_code == 200
        make.ticket(acme, title="Untouched", description="No override on this one.")
        with app.app_context():
            found = training.staff_overrides()
        assert [(e.title, e.category) for e in found] == [(t, c) for t, _, c in OVERRIDES]
        yield db_url


def _config(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "ticketing.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "classifier": {"model": str(model)},
                "outbox": {"worker": False},
                "live": {"enabled": False},
            }
        )
    )
    return path


def _corpus(tmp_path: Path, name: str, shuffle_labels: bool = False, every: int = 6) -> Path:
    """Every sixth ticket of the shipped corpus (quicker to train), labels optionally shuffled."""
    corpus = training.load_corpus()[::every]
    labels = [e.category for e in corpus]
    if shuffle_labels:
        random.Random(1).shuffle(labels)
    path = tmp_path / name
    path.write_text(
        "".join(
            f"{c} | {e.priority} | {e.title} | {e.description}\n"
            for c, e in zip(labels, corpus, strict=True)
        )
    )
    return path


def _current_model(database_url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The current model (the shipped one, its recorded score lowered so that a model
    trained on a sixth of the corpus beats it) and the CLI's environment."""
    current = tmp_path / "model.json"
    data = json.loads(__import__("gzip").decompress(SHIPPED_MODEL.read_bytes()))
    data["evaluation"]["score"] = 0.5
    current.write_text(json.dumps(data))
    env = {
        **os.environ,
        "TICKETING_DATABASE_URL": database_url,
        "TICKETING_CONFIG": str(_config(tmp_path, current)),
    }
    return current, env


def test_train_learns_from_the_overrides_in_the_database(database_with_overrides, tmp_path):
    current, env = _current_model(database_with_overrides, tmp_path)
    result = run(env, "train", "--corpus", str(_corpus(tmp_path, "sixth.txt")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"and {len(OVERRIDES)} staff overrides" in result.stdout
    assert f"staff overrides held out ({len(OVERRIDES)})" in result.stdout
    assert "current model" in result.stdout and "score 50.0 %" in result.stdout
    trained = TextModel.load(current)
    assert trained.trained["overrides"] == len(OVERRIDES)
    assert trained.evaluation["overrides"] == len(OVERRIDES)
    assert trained.evaluation["score"] > 0.5
    assert trained.priority_classes and trained.evaluation["kfold"]["priority"]["n"] == len(
        training.load_corpus(tmp_path / "sixth.txt")
    )
    # it learned the overrides it was trained on
    for title, description, category in OVERRIDES:
        p = trained.probabilities(title, description)
        assert max(p, key=p.get) == category, (title, p)


def test_train_refuses_a_worse_model_and_evaluate_reports_overrides(
    sqlite_with_overrides, tmp_path
):
    """Refusing and evaluating do not depend on the database (reading the overrides,
    which does, is the test above, on both)."""
    current, env = _current_model(sqlite_with_overrides, tmp_path)
    _corpus(tmp_path, "sixth.txt")
    # A corpus with shuffled labels makes a worse model: refused, file unchanged
    # (every twelfth ticket: noise is slow to fit and a smaller corpus shows it as well).
    before = current.read_bytes()
    result = run(env, "train", "--corpus", str(_corpus(tmp_path, "bad.txt", True, 12)))
    assert result.returncode == 1
    assert "refused: the new model scores" in result.stderr
    assert current.read_bytes() == before

    # --output elsewhere: compared with the configured model when that file is new
    other = tmp_path / "other.json.gz"
    result = run(
        env,
        "train",
        "--corpus",
        str(_corpus(tmp_path, "bad2.txt", True, 12)),
        "--output",
        str(other),
    )
    assert result.returncode == 1 and not other.exists()

    # evaluate --overrides reports them; a broken corpus is a clear error
    result = run(env, "evaluate", "--overrides", "--corpus", str(tmp_path / "sixth.txt"))
    assert result.returncode == 0 and f"{len(OVERRIDES)} staff overrides" in result.stdout
    (tmp_path / "broken.txt").write_text(
        "nonsense | a | b\nno separators here\nbilling | urgent | a | b\n"
    )
    result = run(env, "evaluate", "--corpus", str(tmp_path / "broken.txt"))
    assert result.returncode != 0
    assert "unknown category 'nonsense'" in result.stderr
    assert "2: not 'category | priority | title | description'" in result.stderr
    # an unknown priority is not taken for one: the line reads as category | title | description
    assert ":3:" not in result.stderr
