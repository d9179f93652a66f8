"""The rows of ``make bench``'s one table: each benchmark records its figures here, ``run_all`` prints them.

A script run alone prints its own detailed report and records nothing; run by
``bench/run_all.py`` (which sets ``BENCH_RESULTS`` to a file of its own), it
also appends its rows to that file, one JSON object a line, so that the
table is built from what the scripts measured, not from parsing their text.

A row says what was measured, against which baseline of the same run, the
result (a ratio or a count), the target beside it and whether it is met
(``None`` when the figure has no target: it is for reading).
"""

import json
import os
from dataclasses import asdict, dataclass

RESULTS_ENV = "BENCH_RESULTS"


@dataclass
class Row:
    number: str  # the row ("1", "5b", ...) or "-" for a figure of another issue
    figure: str
    measured: str
    baseline: str
    result: str
    target: str
    met: bool | None
    note: str = ""


def record(number, figure, measured, baseline, result, target, met, note=""):
    """Append a row to the run's results (nothing when the script runs alone)."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    row = Row(str(number), figure, measured, baseline, result, target, None if met is None else bool(met), note)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(row)) + "\n")


def load(path):
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            rows = [Row(**json.loads(line)) for line in fh if line.strip()]
    return rows


def verdict(met):
    return "—" if met is None else "yes" if met else "**NO**"


def markdown(rows):
    """The table as Markdown: readable in a terminal, pasted as is into the README."""
    header = ["#", "figure", "measured", "baseline (same run)", "result", "target", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        figure = row.figure + (f" ({row.note})" if row.note else "")
        cells = [row.number, figure, row.measured, row.baseline, row.result, row.target, verdict(row.met)]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)
