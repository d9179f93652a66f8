"""Where and when the sandbox's jobs run: on a queue of their own, never before they are due.

The sandbox stands in for the provider's render farm, so its CPU-heavy renders get a django-q2
cluster of their own (``Q_CLUSTER["ALT_CLUSTERS"]["sandbox"]``, started with
``Q_CLUSTER_NAME=sandbox manage.py qcluster``): the app's jobs (send, poll, archive, the sweep)
never queue behind them, and the app's cluster never runs them.

That queue is always the ORM broker's table, with Redis configured or not, because that broker can
hold a package back: it hands one out only once its ``lock`` has passed (``OrmQ.lock``, "prevent
any cluster from pulling until"; that is how it hands out again a package nobody acknowledged). A
package written with a future lock is a delayed enqueue, exact to the broker's poll (0.2 s), so
the minimum processing time is a wait in the table, not a sleep in a worker. (django-q2's own
schedules would do too, but its scheduler looks only every 30 seconds.)
"""

from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.tasks import async_task

# The name of its entry in settings.Q_CLUSTER["ALT_CLUSTERS"] (settings cannot import this module).
SANDBOX_CLUSTER = "sandbox"


class _NotBefore(ORM):
    """The ORM broker on the sandbox's queue, writing each package locked until ``not_before``."""

    def __init__(self, not_before):
        super().__init__(list_key=SANDBOX_CLUSTER)
        self.not_before = not_before

    def enqueue(self, task):
        return self.get_connection().create(key=self.list_key, payload=task, lock=self.not_before).pk


def _enqueue(func, *args, task_name, not_before=None):
    broker = _NotBefore(not_before or timezone.now())
    return async_task(func, *args, task_name=task_name, cluster=SANDBOX_CLUSTER, broker=broker)


def enqueue_generate(task_id):
    """Render ``task_id`` as soon as a sandbox worker is free."""
    return _enqueue("sandbox.jobs.generate", task_id, task_name=f"sandbox-generate-{task_id}")


def enqueue_release(task_id, outcome, due_at):
    """Record ``outcome`` and call back at ``due_at``, not before (``sandbox.jobs.release``)."""
    return _enqueue("sandbox.jobs.release", task_id, outcome, task_name=f"sandbox-release-{task_id}", not_before=due_at)
