"""How cheap is following an open studio page? It sends one poll every 3 s, whatever its cards in flight.

Run: .venv/bin/python bench/bench_status.py

A member has 10 tasks in flight on their studio page and 1,000 finished ones in
the table (so a read that is not a single indexed one would show). Measured
against a baseline in the same run: a request through the same middleware to
a view that does no work (the liveness probe, ``/livez``). Prints, per request
and as a share of the baseline's throughput:

* the page's poll (GET /tasks/live/ with the 10 cards' versions) when nothing
  changed: an empty 204, and its SQL queries (the session comes from the cache);
* the same poll when one card changed: 200, that card alone, out of band;
* the old way for comparison: one card's own poll (GET /tasks/<id>/status/),
  which a page sent for each card in flight;
* the floor any signed-in request pays here (the same poll following no card:
  the session from the cache, the member from the database), to tell the
  poll's own cost from authentication's.

First in-process (django.test.Client), then, when gunicorn and wrk are both
installed, through gunicorn (lumaweb/gunicorn.conf.py, as ``make run`` serves)
loaded by wrk; without them that part is skipped with a note. Target (issue 7):
the whole page's poll at ≥ 0.5× the no-work view's throughput. No assertions:
the figures are for reading (the query count is asserted by tests/test_live_status.py).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import table, world  # noqa: E402

world.throwaway(allowed_hosts="testserver,127.0.0.1")

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from modify.models import ModifyTask  # noqa: E402
from tests.factories import make_member, make_task  # noqa: E402

CARDS = 10
OTHER_TASKS = 1000
REQUESTS = 300  # per round and figure, in-process
ROUNDS = 5  # the figures are interleaved, round by round; each figure's fastest round counts (the least disturbed)
WRK_SECONDS = 5
TARGET = 0.5
HTMX = {"HX-Request": "true"}
NOTHING_URL = "/livez"  # the process answers, nothing else is asked
BASELINE, UNCHANGED, OLD = "baseline (no-work view)", "page poll, unchanged", "one card's own poll (old)"
SINCE = re.compile(r'<input type="hidden" name="since" value="([^"]+)">')


def populate():
    """The member, 1,000 of their tasks finished long ago, and 10 in flight on the studio page."""
    user = make_member("bench")
    with transaction.atomic():  # one commit: SQLite would otherwise sync thousands of times
        for i in range(OTHER_TASKS):
            make_task(user, ModifyTask.State.FAILED, prompt=f"task {i}", url="https://x/a.mp4")
        states = [ModifyTask.State.GENERATING, ModifyTask.State.ARCHIVING, ModifyTask.State.UNCONFIRMED]
        for i in range(CARDS):
            make_task(user, states[i % len(states)], prompt=f"in flight {i}")
    return user


def urls(client):
    """The URLs to measure, with the versions the studio page itself holds."""
    page = client.get("/").content.decode()
    since = SINCE.findall(page)
    assert len(since) == CARDS, f"the studio shows {len(since)} cards in flight, not {CARDS}"
    changed = [f"{since[0].split(':')[0]}:0"] + since[1:]  # a card the page holds at an old version
    one = ModifyTask.objects.get(pk=since[0].split(":")[0])
    return {
        BASELINE: (NOTHING_URL, 200),
        UNCHANGED: ("/tasks/live/?" + urlencode({"since": since}, doseq=True), 204),
        "page poll, one changed": ("/tasks/live/?" + urlencode({"since": changed}, doseq=True), 200),
        OLD: (f"/tasks/{one.pk}/status/", 200),
        "signed-in floor (no card)": ("/tasks/live/", 286),
    }


def in_process(client, targets):
    """ms per request for each target: interleaved rounds, the fastest of each."""
    for url, status in targets.values():
        got = client.get(url, headers=HTMX).status_code
        assert got == status, f"{url} answered {got}, not {status}"
    rounds = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, (url, _) in targets.items():
            start = time.perf_counter()
            for _ in range(REQUESTS):
                client.get(url, headers=HTMX)
            rounds[name].append((time.perf_counter() - start) / REQUESTS * 1000)
    return {name: min(times) for name, times in rounds.items()}


def queries_of(client, url):
    with CaptureQueriesContext(connection) as captured:
        client.get(url, headers=HTMX)
    return [q["sql"] for q in captured]


def through_gunicorn(cookie, targets):
    """requests/s for each target through gunicorn and wrk; None (with a note) when either is missing."""
    gunicorn = shutil.which("gunicorn", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    wrk = shutil.which("wrk")
    if not (gunicorn and wrk):
        missing = " and ".join(name for name, path in (("gunicorn", gunicorn), ("wrk", wrk)) if not path)
        print(f"\ngunicorn + wrk: skipped, {missing} not installed (wrk: apt-get install wrk).")
        return None
    port = world.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    server = subprocess.Popen([gunicorn, "-c", str(ROOT / "lumaweb" / "gunicorn.conf.py")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + NOTHING_URL, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        headers = ["-H", f"Cookie: {cookie}", "-H", "HX-Request: true"]
        rates = {}
        for name, (url, status) in targets.items():
            request = urllib.request.Request(base + url, headers={"Cookie": cookie, "HX-Request": "true"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert answer.status == status, f"{url} answered {answer.status} through gunicorn, not {status}"
            out = subprocess.run([wrk, "-t2", "-c16", f"-d{WRK_SECONDS}s", *headers, base + url],
                                 capture_output=True, text=True, check=True).stdout
            assert "Non-2xx" not in out, out
            rates[name] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        return rates
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def verdict(ratio):
    print(f"whole page's poll / no-work view: {ratio:.2f}x (target ≥ {TARGET}x: {'met' if ratio >= TARGET else 'NOT met'})")


def main():
    user = populate()
    client = Client()
    client.force_login(user)
    targets = urls(client)
    poll_url = targets[UNCHANGED][0]
    queries = queries_of(client, poll_url)
    ms = in_process(client, targets)

    baseline = ms[BASELINE]
    print(f"cards in flight on the page : {CARDS} (beside {OTHER_TASKS} finished tasks of the member)")
    print(f"sessions                    : {settings.SESSION_ENGINE}, cache {settings.CACHES['default']['BACKEND']}")
    tables = ", ".join(re.search(r'FROM "?(\w+)', sql).group(1) if "FROM" in sql else sql[:30] for sql in queries)
    print(f"page poll SQL queries       : {len(queries)} ({tables}; the session from the cache)")
    print(f"\nin-process (django.test.Client), fastest of {ROUNDS} interleaved rounds of {REQUESTS} requests")
    print(f"{'figure':28} {'ms/request':>10} {'requests/s':>11} {'× baseline':>11}")
    for name, value in ms.items():
        print(f"{name:28} {value:10.3f} {1000 / value:11.0f} {baseline / value:10.2f}x")
    old_page = ms[OLD] * CARDS
    print(f"{'10 cards the old way':28} {old_page:10.3f} {1000 / old_page:11.0f} {baseline / old_page:10.2f}x")
    verdict(baseline / ms[UNCHANGED])
    table.record(3, f"status poll throughput: the studio's one poll, {CARDS} cards in flight, unchanged (204)",
                 f"{1000 / ms[UNCHANGED]:.0f} requests/s, {len(queries)} SQL quer{'y' if len(queries) == 1 else 'ies'}",
                 f"/livez {1000 / baseline:.0f} requests/s", f"{baseline / ms[UNCHANGED]:.2f}×", f"≥ {TARGET}×",
                 baseline / ms[UNCHANGED] >= TARGET, "in-process; the old way, a poll per card: "
                 f"{baseline / old_page:.2f}×")

    rates = through_gunicorn(f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}", targets)
    if rates:
        conn_max_age = os.environ.get("DB_CONN_MAX_AGE") or "0 (a connection per request)"
        print(f"\ngunicorn (lumaweb/gunicorn.conf.py) + wrk -t2 -c16 -d{WRK_SECONDS}s, DB_CONN_MAX_AGE={conn_max_age}")
        print(f"{'figure':28} {'requests/s':>11} {'× baseline':>11}")
        for name, rate in rates.items():
            print(f"{name:28} {rate:11.0f} {rate / rates[BASELINE]:10.2f}x")
        verdict(rates[UNCHANGED] / rates[BASELINE])
        table.record("3 (gunicorn)", f"status poll throughput through gunicorn + wrk, {CARDS} cards, unchanged",
                     f"{rates[UNCHANGED]:.0f} requests/s", f"/livez {rates[BASELINE]:.0f} requests/s",
                     f"{rates[UNCHANGED] / rates[BASELINE]:.2f}×", f"≥ {TARGET}×",
                     rates[UNCHANGED] / rates[BASELINE] >= TARGET)


if __name__ == "__main__":
    main()
