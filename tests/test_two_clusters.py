"""Two q clusters, as on two hosts, share one queue on PostgreSQL and Redis, and no task is handled twice.

The session's app cluster (the ``qcluster`` fixture) and one more ``manage.py
qcluster`` started with the very same configuration (same cluster name, so
the same Redis queue) take the app's jobs as they come. Every job claims its
task with a conditional UPDATE first, so however the jobs fall, and even
when a task's sending job is in the queue twice (as after a sweep found it
lost), each step happens once: one claim, one upload, one generate, one
result archived, one sandbox task, credits spent once.
"""

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.test import Client
from django_q.models import Task as QueueJob

from modify import enqueue
from modify.models import ModifyTask
from sandbox.models import Account, Task as SandboxTask, UploadedFile
from tests.conftest import SANDBOX_KEY, _required, wait_for, wait_for_state
from tests.factories import make_member

ROOT = Path(__file__).resolve().parent.parent
TASKS = 12
ONCE_PER_TASK = ("created", "claim", "generate_sent", "accepted", "result_found", "archived")


def _missing():
    """``(REQUIRE_* variable, what)`` of each shared engine this run lacks."""
    missing = []
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        missing.append(("REQUIRE_POSTGRES", "PostgreSQL (DATABASE_URL)"))
    if not settings.REDIS_URL:
        missing.append(("REQUIRE_REDIS", "Redis (REDIS_URL)"))
    return missing


MISSING = _missing()
# Skipped before any cluster starts, unless an engine it lacks is required (then it fails, below).
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(bool(MISSING) and not any(_required(name) for name, _ in MISSING),
                                                   reason=f"needs {' and '.join(what for _, what in MISSING)}")]


@pytest.fixture(autouse=True)
def postgres_and_redis():
    """Several hosts need a shared database and broker: a failure, not a skip, when they are required."""
    for required, what in MISSING:
        if _required(required):
            pytest.fail(f"{required} is set but this run has no {what}.")


@pytest.fixture
def second_cluster(qcluster, tmp_path):
    """One more ``manage.py qcluster``, configured as the session's own: another host. Its log's path."""
    log_path = tmp_path / "second-cluster.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=qcluster.env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: process.poll() is not None or "running." in log_path.read_text(), timeout=60,
                     what="the second q cluster to start")
            assert process.poll() is None, log_path.read_text()[-3000:]
            yield log_path
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def jobs_in_log(log_path, task_ids):
    """How many of the tasks' jobs the cluster that wrote ``log_path`` ran."""
    lines = [line for line in log_path.read_text().splitlines() if " processing " in line]
    return sum(1 for line in lines for task_id in task_ids if f"-{task_id} " in line)


def test_two_clusters_share_the_work_and_no_task_is_handled_twice(e2e, second_cluster, clip):
    member = make_member("maria")
    client = Client()
    client.force_login(member)
    source = clip(seconds=1)
    credits = Account.for_key(SANDBOX_KEY).credits
    for take in range(1, TASKS + 1):
        with open(source, "rb") as fh:
            response = client.post("/tasks/", {"video": fh, "prompt": f"a snowy winter night, take {take}"})
        assert response.status_code == 302, response.content.decode()[:2000]
    tasks = list(ModifyTask.objects.filter(owner=member))
    assert len(tasks) == TASKS
    for task in tasks:  # each sending job once more, as a sweep would for a job it thinks lost
        enqueue.send_to_provider(task)

    for task in tasks:
        wait_for_state(task, ModifyTask.State.SUCCEEDED, timeout=240)
    for task in tasks:
        counts = Counter(task.events.values_list("kind", flat=True))
        assert {kind: counts[kind] for kind in ONCE_PER_TASK} == dict.fromkeys(ONCE_PER_TASK, 1), (task.pk, counts)
        assert SandboxTask.objects.filter(task_id=task.provider_task_id).count() == 1
        assert UploadedFile.objects.filter(file_name=f"{task.pk}.mp4").count() == 1  # uploaded once
        # Archived once: the task's folder holds one result and one poster, no second copy of either.
        assert sorted(default_storage.listdir(os.path.dirname(task.result_file.name))[1]) == ["poster.jpg", "result.mp4"]
    assert SandboxTask.objects.count() == TASKS  # one provider task per task: nothing generated twice
    assert Account.for_key(SANDBOX_KEY).credits == credits - TASKS * settings.SANDBOX_TASK_COST

    # Both hosts did some of it: the second ran some of the tasks' jobs, the session's cluster the rest.
    task_ids = [str(task.pk) for task in tasks]
    names = [f"{job}-{task_id}" for task_id in task_ids for job in ("send", "poll", "archive")]
    wait_for(lambda: QueueJob.objects.filter(name__in=[f"archive-{task_id}" for task_id in task_ids]).count() == TASKS,
             what="the archive jobs' results to be saved")
    done = QueueJob.objects.filter(name__in=names).count()
    assert done >= 4 * TASKS  # two sendings, a poll and an archive per task, at least
    assert 0 < jobs_in_log(second_cluster, task_ids) < done
