"""What the ticket service's configuration costs: at start (per worker) and per request.

    python -m benchmarks.config_load

A gunicorn worker builds its app once; each figure is the median CPU time of
fresh Python processes importing ``ticketing`` and running ``create_app``,
side by side for this tree and for the baseline, the last revision with the
hand-written checker (:data:`BASELINE`, extracted with ``git archive``). In
this tree it also splits out reading the YAML, importing pydantic, and one
check of every section once the models are built. On the request path
settings are read as attributes: timed against a frozen dataclass.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
from dataclasses import dataclass
from pathlib import Path

from benchmarks._support import say, verdict

#: The last revision whose ticket service checked its configuration by hand.
BASELINE = "92a62a0"
ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 7

_PROBE = r"""
import json, sys, tempfile, time
cpu = time.process_time
t0 = cpu()
import ticketing
t1 = cpu()
with tempfile.TemporaryDirectory() as tmp:
    ticketing.create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/t.db"})
t2 = cpu()
out = {"import": t1 - t0, "create_app": t2 - t1, "pydantic": "pydantic" in sys.modules}
try:
    from ticketing.config import check_config, load_sections
except ImportError:  # the baseline
    pass
else:
    t3 = cpu()
    for _ in range(50):
        sections = load_sections()
    t4 = cpu()
    for _ in range(50):
        check_config(sections, {})
    t5 = cpu()
    out.update(yaml=(t4 - t3) / 50, check=(t5 - t4) / 50)
print(json.dumps(out))
"""

_PYDANTIC = "import time; t = time.process_time(); import pydantic; print(time.process_time() - t)"


@dataclass(frozen=True)
class _Plain:
    max_json_bytes: int


def _medians(pythonpath: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _PROBE],
                capture_output=True,
                text=True,
                check=True,
                env=env,
                cwd=pythonpath or ROOT,
            ).stdout.splitlines()[-1]
        )
        for _ in range(PROCESSES)
    ]
    return {key: statistics.median(float(run[key]) for run in runs) for key in runs[0]}


def _baseline_tree(into: str) -> str:
    archive = subprocess.run(
        ["git", "archive", BASELINE, "ticketing"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        old = _medians(_baseline_tree(tmp))
    new = _medians(None)
    pydantic = statistics.median(
        float(
            subprocess.run(
                [sys.executable, "-c", _PYDANTIC], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(PROCESSES)
    )
    start_old, start_new = old["import"] + old["create_app"], new["import"] + new["create_app"]
    ms = lambda seconds: f"{seconds * 1000:7.1f}"  # noqa: E731
    say(f"{PROCESSES} fresh processes each, median CPU ms      baseline ({BASELINE})   this tree")
    for label, before, after in (
        ("import ticketing", old["import"], new["import"]),
        ("create_app", old["create_app"], new["create_app"]),
        ("worker start (both)", start_old, start_new),
    ):
        say(f"  {label:<46}{ms(before)}      {ms(after)}")
    say(f"  ratio this tree / baseline = {start_new / start_old:.2f}")
    say(
        f"this tree: import pydantic {ms(pydantic).strip()} ms (in the baseline app: "
        f"{'yes' if old['pydantic'] else 'no'}), read + merge ticketing.yml "
        f"{ms(new['yaml']).strip()} ms, check every section {ms(new['check']).strip()} ms"
    )
    ratio = start_new / start_old

    from ticketing.config import load_sections
    from ticketing.desk.settings import check_core

    settings = check_core(load_sections()).api
    plain = _Plain(settings.max_json_bytes)
    n = 1_000_000
    model_ns = (
        min(timeit.repeat("s.max_json_bytes", globals={"s": settings}, number=n, repeat=7))
        / n
        * 1e9
    )
    plain_ns = (
        min(timeit.repeat("s.max_json_bytes", globals={"s": plain}, number=n, repeat=7)) / n * 1e9
    )
    say(
        f"attribute read: settings model {model_ns:.0f} ns, frozen dataclass {plain_ns:.0f} ns "
        f"(+{model_ns - plain_ns:.0f} ns: pydantic's __getattr__ hook)"
    )
    say(verdict("a worker starts within 1.2x of the baseline's time", ratio < 1.2, f"{ratio:.2f}x"))
    # A request reads its settings some 10-20 times (body limit, scanning, rate limits).
    say(
        verdict(
            "20 setting reads (more than a request makes) under 5 us",
            20 * model_ns < 5000,
            f"{20 * model_ns / 1000:.1f} us",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
