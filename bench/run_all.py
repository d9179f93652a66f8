"""``make bench``: every benchmark, one after the other, then one table of their figures.

Run: .venv/bin/python bench/run_all.py [--only NAME ...]

Each script runs in a process of its own (its own throwaway world), alone on
the machine as far as this run goes: none runs beside another, so that one's
load never shows in another's timings. Each records its figures
(``bench/table.py``); its detailed report goes to ``var/bench/<when>/``.
The table (Markdown: readable here, pasted as is into the README's
Benchmarks) says for each figure what was measured, against which baseline
of the same run, the target and whether it is met. Progress goes to stderr,
the table to stdout. The whole run must take under 10 minutes; it says so
when it does not. Exits non-zero when a script failed.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table, world  # noqa: E402

# In the order they run: the quick in-process ones first, the live servers last.
SCRIPTS = [
    ("bench_transform.py", []),
    ("bench_status.py", []),
    ("bench_admin.py", []),
    ("bench_audit.py", ["--as-migrated-only"]),
    ("bench_stats.py", []),
    ("bench_memory.py", []),
    ("bench_limiter.py", []),
    ("bench_latency.py", []),
]
BUDGET_SECONDS = 600
SCRIPT_TIMEOUT = 360  # a script that hangs (a server that never answers) is stopped, the run goes on


def run(script, args, results, log_path):
    """Run one script; ``(seconds, None)`` or ``(seconds, what went wrong)``."""
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(world.ROOT / "bench" / script), *args], cwd=world.ROOT,
                                   env={**os.environ, table.RESULTS_ENV: str(results)}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return time.monotonic() - started, f"stopped after {SCRIPT_TIMEOUT} s"
    took = time.monotonic() - started
    return took, None if code == 0 else f"exited with status {code}"


def order(row):
    """Rows in the issue's order (1, 2a, 2b, ... 7), then figures of other issues."""
    if row.number == "-":
        return (1, 0, "")
    digits = "".join(c for c in row.number if c.isdigit()) or "0"
    return (0, int(digits), row.number)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (e.g. bench_status.py)")
    options = parser.parse_args()
    scripts = [(s, a) for s, a in SCRIPTS if not options.only or s in options.only or s[6:-3] in options.only]
    now = datetime.now(timezone.utc)
    logs = world.ROOT / "var" / "bench" / now.strftime("%Y%m%d-%H%M%S")
    logs.mkdir(parents=True, exist_ok=True)
    results = Path(tempfile.mkstemp(prefix="bench-results-", suffix=".jsonl")[1])
    load = os.getloadavg()[0]
    started = time.monotonic()
    failures = []
    try:
        for script, args in scripts:
            print(f"{script:<20} ...", end="", file=sys.stderr, flush=True)
            took, problem = run(script, args, results, logs / f"{script[:-3]}.txt")
            print(f" {took:5.0f} s{'  FAILED: ' + problem if problem else ''}", file=sys.stderr, flush=True)
            if problem:
                failures.append(f"{script} {problem} (see {logs / (script[:-3] + '.txt')})")
        rows = sorted(table.load(results), key=order)
    finally:
        results.unlink(missing_ok=True)
    total = time.monotonic() - started

    over = "" if total < BUDGET_SECONDS else f" — OVER the {BUDGET_SECONDS // 60} min budget"
    lines = [
        f"`make bench`, {now:%Y-%m-%d %H:%M} UTC, on {world.machine()}; load average {load:.1f} before,"
        f" {os.getloadavg()[0]:.1f} after",
        f"took {total // 60:.0f} min {total % 60:.0f} s (target < {BUDGET_SECONDS // 60} min){over};"
        f" detailed reports in var/bench/{logs.name}/",
        "",
        table.markdown(rows),
    ]
    missed = [row for row in rows if row.met is False]
    if missed:
        lines += ["", "Not met: " + "; ".join(f"row {row.number}, {row.result} against {row.target}" for row in missed)]
    for failure in failures:
        lines.append(f"FAILED: {failure}")
    report = "\n".join(lines)
    (logs / "table.md").write_text(report + "\n")
    print(report)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
