"""Handing work to django-q2: the one place that enqueues, and a leaf.

The jobs are named by their dotted path, so this module imports nothing of
the domain and the domain can call it without importing the job module
back. Each job claims its task with a transition before working, so an
enqueue that turns out to be one too many does nothing.
"""

from django_q.tasks import async_task


def send_to_provider(task):
    async_task("modify.jobs.send_to_provider", str(task.pk), task_name=f"send-{task.pk}")


def poll(task):
    async_task("modify.jobs.poll", str(task.pk), task_name=f"poll-{task.pk}")


def archive(task):
    async_task("modify.jobs.archive", str(task.pk), task_name=f"archive-{task.pk}")
