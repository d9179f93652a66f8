"""What the benchmarks share: a throwaway Django, a team's history in bulk, timing, live processes.

Every benchmark runs against a world of its own, never a real one: a fresh
folder (``LUMAWEB_VAR_DIR``: its SQLite file, media and file cache), removed
when the script ends; ``DATABASE_URL`` and ``REDIS_URL`` are dropped unless a
script keeps them on purpose. ``throwaway()`` must run before anything of the
app is imported (it sets the environment the settings read).

``populate()`` bulk-inserts a team's history (members, keys, tasks in every
state over three months): the factory drives every transition and would take
minutes for 10,000 tasks, so these rows skip ``save()`` and its lifecycle
guard. They are a bench's data, not the app's way in.
"""

import atexit
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TASKS = 10_000
MEMBERS = 50
# What a process of the app run beside a benchmark must not inherit from the shell that started it.
FOREIGN = ("DATABASE_URL", "REDIS_URL", "LUMA_API_KEY", "LUMA_API_BASE", "LUMA_UPLOAD_BASE", "Q_CLUSTER_NAME",
           "SANDBOX_FAULTS", "MEDIA_ROOT", "CACHE_DIR", "AWS_STORAGE_BUCKET_NAME")


def throwaway(allowed_hosts="testserver", keep=(), migrate=True, **environment):
    """Point Django at a fresh folder of its own, set it up and migrate it; the folder's path.

    ``keep``: names of ``FOREIGN`` variables to keep (``("REDIS_URL",)`` to run on Redis).
    ``environment``: more variables for the settings (strings)."""
    var_dir = tempfile.mkdtemp(prefix="lumaweb-bench-")
    atexit.register(shutil.rmtree, var_dir, ignore_errors=True)  # nothing of it is kept
    os.environ["LUMAWEB_VAR_DIR"] = var_dir
    for name in FOREIGN:
        if name not in keep:
            os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "lumaweb.settings"
    os.environ["ALLOWED_HOSTS"] = allowed_hosts
    os.environ.update(environment)

    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    return Path(var_dir)


# --- A team's history, in bulk ----------------------------------------------------------------

def populate(tasks=TASKS, members=MEMBERS, heavy_share=5):
    """``members`` members, a superuser ``staff``, five keys and ``tasks`` tasks; the staff user.
    ``member00`` has every ``heavy_share``-th task besides its share (a fifth of them: the studio is
    timed as the busiest member)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from modify import crypto
    from modify.models import ApiKey

    User = get_user_model()
    with transaction.atomic():  # one commit: SQLite would otherwise sync for every batch
        User.objects.bulk_create([User(username=f"member{i:02d}", password="!") for i in range(members)])
        staff = User.objects.create_user("staff", is_staff=True, is_superuser=True)
        owners = list(User.objects.filter(username__startswith="member").order_by("username"))
        ApiKey.objects.bulk_create([  # the team's key, and four members' own
            ApiKey(label=f"Key {i}", owner=owners[i] if i else None, secret_encrypted=crypto.encrypt(f"kie-secret-{i:04d}"), last4=f"{i:04d}",
                   last_credits=40 + 400 * i, credits_checked_at=timezone.now())
            for i in range(5)
        ])
    add_tasks(tasks, heavy_share=heavy_share)
    return staff


def add_tasks(count, heavy_share=5):
    """``count`` more tasks, older than those already there, in every state (mostly finished, some
    in flight), spread over the members (see ``populate``) and keys, 13 minutes apart."""
    import uuid
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from modify.models import ApiKey, ModifyTask
    from modify.states import State

    states = [State.SUCCEEDED] * 12 + [State.FAILED] * 4 + [State.QUEUED, State.GENERATING, State.ARCHIVING,
                                                               State.UNCONFIRMED]
    members = list(get_user_model().objects.filter(username__startswith="member").order_by("username"))
    keys = list(ApiKey.objects.order_by("pk")) + [None]
    start = ModifyTask.objects.count()
    now = timezone.now()
    rows = []
    for i in range(start, start + count):
        state = states[i % len(states)]
        created = now - timedelta(minutes=13 * i)
        finished = created + timedelta(minutes=3) if state in (State.SUCCEEDED, State.FAILED) else None
        folder = f"results/{created:%Y/%m}/{uuid.uuid4()}"
        owner = members[0] if i % heavy_share == 0 else members[i % len(members)]
        rows.append(ModifyTask(
            owner=owner, api_key=keys[i % len(keys)], is_sandbox=i % 3 == 0,
            prompt=f"Task {i}: turn the street into a snowy winter night, with warm lights in every window " * 2,
            source_kind=ModifyTask.Source.URL, source_url="https://example.com/clip.mp4", state=state,
            provider_task_id=uuid.uuid4().hex if state not in (State.QUEUED, State.UNCONFIRMED) else "",
            failed_stage=State.GENERATING if state == State.FAILED else "",
            error_message="The provider could not generate this video (bad prompt)." if state == State.FAILED else "",
            result_file=f"{folder}/result.mp4" if state == State.SUCCEEDED else "",
            poster=f"{folder}/poster.jpg" if state == State.SUCCEEDED else "",
            created_at=created, updated_at=finished or created, finished_at=finished,
        ))
    with transaction.atomic():
        ModifyTask.objects.bulk_create(rows, batch_size=1000)


# --- Timing requests in this process ------------------------------------------------------------

def queries_of(client, url, headers=None):
    """The SQL statements of one request to ``url`` (which must answer 200, 204 or 286), as a list."""
    from django.db import connection

    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        response = client.get(url, headers=headers)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code in (200, 204, 286), f"{url} answered {response.status_code}"
    return queries


def timed(client, url, requests, headers=None):
    """``(wall-clock ms, CPU ms)`` per request, over ``requests`` requests after a warm-up one."""
    client.get(url, headers=headers)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        response = client.get(url, headers=headers)
        if response.streaming:
            b"".join(response.streaming_content)
    return (time.perf_counter() - wall) / requests * 1000, (time.process_time() - cpu) / requests * 1000


# --- Processes of the app beside a benchmark ------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command, env, log_path):
    """``command`` (argv) from the checkout, in a session of its own (stopping it stops its children)."""
    log = open(log_path, "w")
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def manage(args, env, log_path):
    return start([sys.executable, "manage.py", *args], env, log_path)


def gunicorn(port, env, log_path):
    """The app as ``make run`` serves it (lumaweb/gunicorn.conf.py), its access log in ``log_path``."""
    return start([sys.executable, "-m", "gunicorn", "--config", "lumaweb/gunicorn.conf.py"],
                 {"HOST": "127.0.0.1", "PORT": str(port), **env}, log_path)


def stop(process, grace=8):
    """TERM to the process's group, KILL after ``grace`` seconds (a q cluster's parent can hang on its
    way out, as bin/run knows: a bench's throwaway cluster is not waited for long), then KILL to
    whatever of its group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(predicate, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def answers(url):
    """Whether ``url`` answers at all (any HTTP status)."""
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def cluster_running(log_path):
    """Whether the q cluster logging to ``log_path`` said it runs."""
    return "running." in Path(log_path).read_text(errors="replace")


class enqueued_later:
    """Hold back the sending jobs of tasks being created, so that all are enqueued at the same moment."""

    def __enter__(self):
        from modify import enqueue

        self.enqueue = enqueue
        self.held, self.real = [], enqueue.send_to_provider
        enqueue.send_to_provider = self.held.append
        return self.held

    def __exit__(self, *exc):
        self.enqueue.send_to_provider = self.real


# --- The machine ------------------------------------------------------------------------------

def machine():
    """What the figures were measured on: CPUs, their model, memory, Python."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpus} CPUs ({model}){memory}, Python {platform.python_version()}, {platform.system()} {platform.release()}"
