"""Bar charts of a comparison, one PNG per workload (matplotlib, Agg backend; runs in the peers venv).

    python -m bench.charts bench/results/charts-input.json docs/img

Bars are medians, dots the individual runs; Conveyor's bars are highlighted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CONVEYOR = "#d9480f"
CONVEYOR_LIGHT = "#ffa94d"
PEER = "#868e96"
PEER_LIGHT = "#ced4da"
UNITS = {
    "enqueue": "jobs/s (higher is better)",
    "drain": "jobs/s (higher is better)",
    "io": "jobs/s (higher is better; 20 slots x 5 ms caps it at 4,000)",
    "retry": "jobs/s (higher is better)",
    "latency": "milliseconds from enqueue to start (lower is better)",
}
FILES = {
    "enqueue": "bench-enqueue.png",
    "drain": "bench-drain.png",
    "latency": "bench-latency.png",
    "io": "bench-io.png",
    "retry": "bench-retry.png",
}


def _bars(ax: Any, bars: list[dict[str, Any]], higher: bool) -> None:
    bars = sorted(bars, key=lambda b: b["median"], reverse=higher)  # the best on top
    labels = [b["label"] + (" †" if b["capped"] else "") for b in bars]
    y = range(len(bars))
    ax.barh(y, [b["median"] for b in bars], color=[CONVEYOR if b["conveyor"] else PEER for b in bars])
    for i, bar in enumerate(bars):
        ax.scatter(bar["values"], [i] * len(bar["values"]), color="black", s=8, zorder=3)
        right = max([bar["median"], *bar["values"]])  # label past the rightmost run's dot
        ax.text(right, i, f"  {bar['median']:,.0f}", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=9)
    ax.set_xlim(0, max(max(b["values"] + [b["median"]]) for b in bars) * 1.15)
    ax.invert_yaxis()


def _latency(ax: Any, p50: list[dict[str, Any]], p99: list[dict[str, Any]]) -> None:
    by_label = {b["label"]: b for b in p99}
    rows = sorted(p50, key=lambda b: b["median"])
    height = 0.4
    for i, bar in enumerate(rows):
        tail = by_label.get(bar["label"])
        ax.barh(i - height / 2, bar["median"], height, color=CONVEYOR if bar["conveyor"] else PEER)
        ax.text(bar["median"], i - height / 2, f" {bar['median']:.2f}", va="center", fontsize=7)
        if tail:
            ax.barh(
                i + height / 2,
                tail["median"],
                height,
                color=CONVEYOR_LIGHT if bar["conveyor"] else PEER_LIGHT,
            )
            ax.text(tail["median"], i + height / 2, f" {tail['median']:.2f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [b["label"] for b in rows], fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(right=max(b["median"] for b in [*p50, *p99]) * 3)
    ax.invert_yaxis()
    ax.legend(
        handles=[
            plt.Rectangle((0, 0), 1, 1, color=PEER),
            plt.Rectangle((0, 0), 1, 1, color=PEER_LIGHT),
        ],
        labels=["p50", "p99"],
        loc="upper right",
        fontsize=8,
    )


def draw(data: dict[str, Any], out: Path) -> list[Path]:
    """Draw every workload's chart into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    workloads = data["workloads"]
    for workload, filename in FILES.items():
        chart = workloads.get(workload)
        if not chart or not chart["bars"]:
            continue
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(chart["bars"]) + 1.4), dpi=110)
        if workload == "latency":
            _latency(ax, chart["bars"], workloads.get("latency_p99", {}).get("bars", []))
            title = "Pickup latency p50 / p99"
        else:
            _bars(ax, chart["bars"], chart["higher_is_better"])
            title = chart["title"]
        ax.set_title(f"{title} — {data.get('subtitle', '')}", fontsize=10)
        ax.set_xlabel(UNITS[workload], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        fig.tight_layout()
        path = out / filename
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Read the chart input, write the PNGs."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data = json.loads(Path(args[0]).read_text())
    for path in draw(data, Path(args[1])):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
