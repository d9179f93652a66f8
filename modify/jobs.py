"""django-q2 job functions: one line each over the domain, named as ``modify.enqueue`` names them.

The schedule (``modify.schedules``) runs ``sweep`` every minute.
"""

from modify import archiving, polling, sending, sweep as sweeping


def send_to_provider(task_id):
    sending.send_to_provider(task_id)


def poll(task_id):
    polling.poll_task(task_id)


def archive(task_id):
    archiving.archive(task_id)


def sweep():
    return sweeping.sweep()
