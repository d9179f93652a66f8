"""Does the app keep under kie.ai's limit of 20 new generation requests per 10 s per key?

Run: .venv/bin/python bench/bench_limiter.py [--tasks 200] [--workers 4] [--redis]

200 submissions at once (uploads, half on each of two keys), sent by a real
django-q2 cluster to the sandbox on a real server (manage.py runserver), in
two runs against a throwaway SQLite database:

* baseline: no limiter in the app, none in the sandbox: how many generate
  calls the cluster sends in its busiest 10 s when nothing holds it back;
* limited: the defaults, the app's limiter (LUMA_RATE_LIMIT per
  LUMA_RATE_WINDOW_SECONDS per key) and the sandbox refusing, with 429, what
  kie.ai would refuse.

Prints, per key, the most generate calls in any 10 s window (from the
sandbox's task creation times, which are when it counted each call), whether
the app saw any 429 (a "rate limiting" retry in a task's history), how long
sending all took against the least time the limit allows, and how often tasks waited.
``--redis`` keeps REDIS_URL (broker, cache and limiter on Redis); by default
the limiter runs on the database. No assertions: the figures are for reading.
"""

import argparse
import math
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table, world  # noqa: E402

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--tasks", type=int, default=200)
ARGS.add_argument("--workers", type=int, default=4)
ARGS.add_argument("--redis", action="store_true", help="keep REDIS_URL (else the limiter runs on the database)")
OPTIONS = ARGS.parse_args()

PORT = world.free_port()
BASE_URL = f"http://127.0.0.1:{PORT}"
KEYS = ("sandbox-key", "bench-second-key")
world.throwaway(allowed_hosts="127.0.0.1", keep=("REDIS_URL",) if OPTIONS.redis else (), LOG_LEVEL="WARNING",
                PUBLIC_BASE_URL=BASE_URL, SANDBOX_API_KEYS=",".join(KEYS), SANDBOX_MIN_SECONDS="0",
                SANDBOX_INITIAL_CREDITS=str(100 * OPTIONS.tasks))

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from modify import enqueue, intake  # noqa: E402
from modify.models import ModifyTask, TaskEvent  # noqa: E402
from sandbox.models import Task as SandboxTask  # noqa: E402
from sandbox.models import key_hash  # noqa: E402
from tests.clips import make_clip  # noqa: E402
from tests.factories import make_key, make_member  # noqa: E402

WINDOW = 10
VERBOSE = {"LOG_LEVEL": "INFO"}  # the server and the cluster log what they do; this process only what goes wrong
RATE_LIMIT_NOTE = "The provider is rate limiting requests."


def submit(owner, keys, source, count, label):
    """``count`` tasks made as the studio makes them, half on each key, then all enqueued at once."""
    made = []
    with transaction.atomic():  # one commit: SQLite would otherwise sync hundreds of times
        for n in range(count):
            made.append(intake.accept(owner, f"{label} {n}", upload=ContentFile(source, name="clip.mp4"),
                                      api_key=keys[n % len(keys)]))
    return made


def busiest_window(moments):
    moments = sorted(moments)
    most, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= timedelta(seconds=WINDOW):
            first += 1
        most = max(most, last - first + 1)
    return most


def run(label, owner, keys, source, app_env, sandbox_env, logs):
    server = world.manage(["runserver", "--noreload", f"127.0.0.1:{PORT}"], {**VERBOSE, **sandbox_env},
                          logs / f"{label}-server.log")
    cluster = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{BASE_URL}/sandbox/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: see {logs}")
            time.sleep(0.2)
        with world.enqueued_later() as enqueued:
            tasks = submit(owner, keys, source, OPTIONS.tasks, label)
        cluster = world.manage(["qcluster"], {**VERBOSE, **app_env, "Q_WORKERS": str(OPTIONS.workers)},
                               logs / f"{label}-cluster.log")
        time.sleep(3)  # the cluster is up before the burst
        started = timezone.now()
        for task in enqueued:
            enqueue.send_to_provider(task)
        ids = [task.pk for task in tasks]
        unsent = ModifyTask.objects.filter(pk__in=ids, state__in=[  # until generate has answered for each
            ModifyTask.State.QUEUED, ModifyTask.State.SUBMITTING, ModifyTask.State.UNCONFIRMED])
        deadline = time.monotonic() + 30 + OPTIONS.tasks * 1.5
        while unsent.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = unsent.count()
        created = SandboxTask.objects.filter(created_at__gte=started).values_list("account__key_hash", "created_at")
        by_account = defaultdict(list)
        for account, moment in created:
            by_account[account].append(moment)
        events = TaskEvent.objects.filter(task_id__in=ids)
        return {
            "windows": {key: busiest_window(by_account[key_hash(key)]) for key in KEYS},
            "calls": len(created),
            "seconds": (max((m for _, m in created), default=started) - started).total_seconds(),
            "refused": events.filter(kind="retry_later", detail=RATE_LIMIT_NOTE).count(),
            "waits": events.filter(kind="wait_for_slot").count(),
            "waited": events.filter(kind="wait_for_slot").values("task").distinct().count(),
            "unsent": left,
            "failed": ModifyTask.objects.filter(pk__in=ids, state=ModifyTask.State.FAILED).count(),
        }
    finally:
        if cluster is not None:
            world.stop(cluster)
        world.stop(server)


def main():
    logs = Path(settings.VAR_DIR) / "logs"
    logs.mkdir()
    owner = make_member("bench")
    keys = [make_key(f"Bench key {n + 1}", secret=secret) for n, secret in enumerate(KEYS)]
    with tempfile.TemporaryDirectory() as tmp:
        source = make_clip(Path(tmp) / "clip.mp4", seconds=1, width=160, height=120).read_bytes()

    baseline = run("baseline", owner, keys, source, {"LUMA_RATE_LIMIT": "0"}, {"SANDBOX_RATE_LIMIT": "0"}, logs)
    limited = run("limited", owner, keys, source, {}, {}, logs)

    limit, window, margin = settings.LUMA_RATE_LIMIT, settings.LUMA_RATE_WINDOW_SECONDS, settings.LUMA_RATE_MARGIN_SECONDS
    per_key = OPTIONS.tasks / len(KEYS)
    print(f"submissions               : {OPTIONS.tasks} at once ({per_key:.0f} on each of {len(KEYS)} keys), "
          f"{OPTIONS.workers} workers, limiter on {'Redis' if settings.REDIS_URL else 'the database'}")
    for label, figures in (("baseline (no limit)", baseline), (f"limited ({limit} per {window:g} s)", limited)):
        windows = ", ".join(str(figures["windows"][key]) for key in KEYS)
        print(f"{label:<26}: busiest {WINDOW} s per key: {windows} generate calls; "
              f"429 seen: {'yes' if figures['refused'] else 'no'} ({figures['refused']}); "
              f"{figures['calls']} calls in {figures['seconds']:.1f} s; "
              f"unsent {figures['unsent']}, failed {figures['failed']}")
    best = (math.ceil(per_key / limit) - 1) * window  # bursts of the limit, one window apart
    step = (window + margin) / limit
    paced = (window + margin) + max(per_key - limit, 0) * step  # the line: the limit at once, then one a step
    print(f"time to send, limited     : {limited['seconds']:.1f} s for {per_key:.0f} calls per key; the limit allows "
          f"{best:.1f} s at best (bursts): {best / max(limited['seconds'], 0.1):.2f} of the best; "
          f"the line's pace ({limit} at once, then one every {step:.2f} s) takes {paced:.1f} s")
    print(f"waits, limited            : {limited['waited']} tasks waited for a slot, "
          f"{limited['waits'] / max(limited['waited'], 1):.2f} waits each; no attempt spent on waiting")
    print(f"ratio busiest/limit       : baseline {max(baseline['windows'].values()) / limit:.2f}, "
          f"limited {max(limited['windows'].values()) / limit:.2f} (target <= 1.00, no 429)")
    busiest = max(limited["windows"].values())
    sent = limited["unsent"] == 0 and limited["failed"] == 0
    table.record(4, f"generate calls in any {WINDOW} s window per key, {OPTIONS.tasks} submissions at once",
                 f"{', '.join(str(limited['windows'][key]) for key in KEYS)} (per key); 429 seen:"
                 f" {limited['refused']}; all sent in {limited['seconds']:.0f} s",
                 f"no limiter: {', '.join(str(baseline['windows'][key]) for key in KEYS)}",
                 f"{busiest / limit:.2f}× the limit", f"≤ {limit} per key, no 429",
                 busiest <= limit and not limited["refused"] and sent,
                 f"{OPTIONS.workers} workers, {len(KEYS)} keys" + ("" if sent else
                                                                   f"; unsent {limited['unsent']}, failed {limited['failed']}"))


if __name__ == "__main__":
    main()
