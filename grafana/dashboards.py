"""Write the provisioned dashboards, grafana/dashboards/*.json, from grafana/boards/,
and docs/dashboards.md's "Panel by panel" section beside them.

    python -m grafana.dashboards            # (or ./dev dashboards) rewrite the JSON files
                                            # and the docs section
    python -m grafana.dashboards --check    # exit 1 and name the files that are out of date

The JSON files are committed (Grafana's file provisioning reads them as they
are); tests/dashboards/test_generated.py fails when they differ from what
this writes, so edit the boards and run this rather than editing the JSON
(or the generated section of docs/dashboards.md: grafana/docs.py writes it).
Thresholds come from the alert rules in rules/*.rules.yml (``--rules DIR``
reads another folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana.boards import BOARDS
from grafana.docs import PAGE, panel_section, update_page
from grafana.thresholds import RULES, alerting_rules

OUTPUT = Path(__file__).resolve().parent / "dashboards"


def render(rules_dir: Path = RULES) -> dict[str, str]:
    """The text of each dashboard file, by file name."""
    rules = alerting_rules(rules_dir)
    return {
        name: json.dumps(module.build(rules).to_json(), indent=2) + "\n"
        for name, module in BOARDS.items()
    }


def stale(output: Path, rendered: dict[str, str]) -> list[str]:
    """Files in ``output`` that differ from ``rendered``, are missing, or are left over."""
    present = {path.name for path in output.glob("*.json")}
    changed = [
        name
        for name, text in rendered.items()
        if name not in present or (output / name).read_text() != text
    ]
    return sorted(changed + sorted(present - set(rendered)))


def page_text(page: Path, rendered: dict[str, str]) -> str:
    """``page`` (docs/dashboards.md) as it should be, its generated section from ``rendered``."""
    return update_page(page.read_text(), panel_section(rendered))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grafana.dashboards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file is not what would be written",
    )
    parser.add_argument("--rules", type=Path, default=RULES, help="folder of *.rules.yml")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="folder of the JSON files")
    parser.add_argument(
        "--docs", type=Path, default=PAGE, help="the docs page with the panel-by-panel section"
    )
    args = parser.parse_args(argv)
    rendered = render(args.rules)
    outdated = stale(args.output, rendered)
    page = page_text(args.docs, rendered)
    page_stale = args.docs.read_text() != page
    if args.check:
        for path in [*(args.output / name for name in outdated), *([args.docs] * page_stale)]:
            print(f"{path}: out of date; run python -m grafana.dashboards", file=sys.stderr)
        return 1 if outdated or page_stale else 0
    if page_stale:
        args.docs.write_text(page)
        print(f"wrote {args.docs}")
    args.output.mkdir(parents=True, exist_ok=True)
    for name in outdated:
        path = args.output / name
        if name in rendered:
            path.write_text(rendered[name])
            print(f"wrote {path}")
        else:
            path.unlink()
            print(f"removed {path} (no board writes it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
