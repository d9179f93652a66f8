"""What staff do to one task, and what they see of the whole account at a glance.

Each action is one transition or one recorded event by staff (actor staff,
and the staff user), so the task's history and the audit say who did it and
when; each answers with an ``Outcome``: a short message for the staff
member, and whether it worked. An action is offered only where it applies
(``offered``); asked anyway (a page gone stale, a second click), it says why
not and changes nothing. The task page and the admin run the same actions,
through ``run``. (What staff see of the whole account is ``modify.dashboard``.)
"""

from dataclasses import dataclass
from typing import Callable

from modify import backend, enqueue, failures, intake, polling, provider
from modify.logfilters import redact
from modify.models import ModifyTask
from modify.states import LIVE, Actor, State


@dataclass(frozen=True)
class Outcome:
    """What an action did, in a sentence for staff; ``ok`` False when it did nothing (or the provider said no)."""

    message: str
    ok: bool = True

    def __str__(self):
        return self.message


# --- The actions -------------------------------------------------------------------------------------

NO_PROVIDER_ID = "This task has no provider task id yet, so there is nothing to ask the provider about."


def check_now(task, by):
    """Ask the provider about the task once (record-info), log its answer as a "checked" event, and,
    for a generating task, act on it as a poll would (a finished result is archived, a failure fails)."""
    if not task.provider_task_id:
        return Outcome(NO_PROVIDER_ID, ok=False)
    try:
        info = backend.client_for(task).record_info(task.provider_task_id)
    except backend.ConfigurationError as error:
        task.record("checked", actor=Actor.STAFF, by=by, detail=f"not asked: {error.sentence}")
        return Outcome(f"Could not ask the provider: {error.sentence}", ok=False)
    except provider.ProviderError as error:
        detail = polling.error_detail(error) + (f": {error.message}" if error.message else "")
        task.record("checked", actor=Actor.STAFF, by=by, detail=detail)
        return Outcome(redact(f"The provider answered with an error: {detail}"), ok=False)
    answer = polling.answer_detail(info)
    task.record("checked", actor=Actor.STAFF, by=by, detail=answer)
    before = task.state
    if before == State.GENERATING:
        polling.settle(task, info)
    moved = f" The task is now {task.get_state_display().lower()}." if task.state != before else ""
    return Outcome(redact(f"The provider says: {answer}.{moved}"))


def retry(task, by):
    """Send a failed task once more, as a new task of its member (``modify.intake.retry``)."""
    try:
        new = intake.retry(task, by=by)
    except intake.SourceGone as gone:
        return Outcome(str(gone), ok=False)
    return Outcome(f"Sent again as a new task of {task.owner.get_username()} (task {new.pk}).")


def rearchive(task, by):
    """Fetch the result of a task that failed while archiving once more (the provider still has it)."""
    if not task.rearchive(by):
        return _moved_on(task)
    enqueue.archive(task)
    return Outcome("Archiving the result again; the page shows how it went.")


def stop(task, by):
    """Stop tracking a live task: it fails, saying staff stopped it (a provider task keeps running upstream)."""
    message = failures.sentence("stopped_by_staff", username=by.get_username())
    if not task.fail(message, actor=Actor.STAFF, by=by):
        return _moved_on(task)
    return Outcome("Stopped: the task is marked failed and no longer tracked.")


def hide(task, by):
    """Take a result out of the team's gallery (its member can share it again)."""
    task.set_shared(False, by=by, actor=Actor.STAFF)
    return Outcome("Hidden from the gallery.")


def _moved_on(task):
    task.refresh_from_db()
    return Outcome(f"Nothing changed: the task had moved on (it is {task.get_state_display().lower()} now).", ok=False)


@dataclass(frozen=True)
class Action:
    name: str  # in the URL: /tasks/<id>/staff/<name>/
    label: str  # on the button
    applies: Callable[[ModifyTask], bool]
    do: Callable[[ModifyTask, object], Outcome]
    why_not: str  # said when it does not apply


ACTIONS = {action.name: action for action in [
    Action("check", "Check with the provider now", lambda t: bool(t.provider_task_id), check_now, NO_PROVIDER_ID),
    Action("retry", "Retry", lambda t: t.can_retry, retry,
           "Only a failed task that was not tried again yet can be retried."),
    Action("rearchive", "Archive again",
           lambda t: t.is_failed and t.failed_stage == State.ARCHIVING and bool(t.result_url), rearchive,
           "Only a task whose result failed to archive can be archived again."),
    Action("stop", "Stop tracking", lambda t: t.state in LIVE, stop,
           "The task has already finished, so there is nothing to stop."),
    Action("hide", "Hide from the gallery", lambda t: t.is_succeeded and t.shared, hide,
           "Only a result shown in the gallery can be hidden."),
]}


def offered(task):
    """The actions that apply to ``task`` as it is now, in the order the pages show them."""
    return [action for action in ACTIONS.values() if action.applies(task)]


def run(name, task, by):
    """Run the action ``name`` on ``task`` for the staff user ``by``; an inapplicable one changes nothing."""
    action = ACTIONS[name]
    if not action.applies(task):
        return Outcome(f"{action.label}: not done. {action.why_not}", ok=False)
    return action.do(task, by)
