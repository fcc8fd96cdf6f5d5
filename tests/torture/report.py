"""``python tests/torture/report.py RESULTS.jsonl``: the verdicts as Markdown tables, one per scenario."""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    by_scenario: dict[str, list[dict[str, object]]] = defaultdict(list)
    with open(path) as results:
        for line in results:
            record = json.loads(line)
            by_scenario[str(record["scenario"])].append(record)
    for scenario, records in by_scenario.items():
        print(f"\n#### {scenario}\n")
        print("| backend | accepted | lost | unexpected | duplicated | stuck | kills | duration | notes |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in records:
            notes = ", ".join(f"{k}: {v}" for k, v in dict(r["notes"]).items())  # type: ignore[call-overload]
            print(
                f"| {r['backend']} | {r['accepted']} | {r['lost']} | {r['unexpected']} | {r['duplicated']} "
                f"| {r['stuck']} | {r['kills']} | {float(r['duration_s']):.1f} s | {notes} |"
            )  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1])
