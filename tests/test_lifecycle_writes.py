"""A task's lifecycle fields are written only by ``ModifyTask.transition``: ``save()`` refuses to, and
no other code in the app writes them with a queryset UPDATE or an attribute assignment."""

import ast
from pathlib import Path

import pytest

from modify.models import LifecycleError, ModifyTask
from modify.states import LIFECYCLE_FIELDS
from tests.factories import make_task

ROOT = Path(__file__).resolve().parent.parent
S = ModifyTask.State
# The helper itself, and the querysets that only read.
ALLOWED = {("modify/models/task.py", "transition")}


@pytest.mark.django_db
def test_save_refuses_a_state_change_made_outside_the_helper(member):
    task = make_task(member, S.GENERATING)
    task.state = S.SUCCEEDED
    with pytest.raises(LifecycleError, match="state can only change through ModifyTask.transition"):
        task.save()
    assert ModifyTask.objects.get(pk=task.pk).state == S.GENERATING


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [("error_message", "made up"), ("next_poll_at", None), ("poll_count", 99)])
def test_save_refuses_any_lifecycle_field(member, field, value):
    task = make_task(member, S.GENERATING)
    setattr(task, field, value)
    with pytest.raises(LifecycleError):
        task.save()


@pytest.mark.django_db
def test_a_new_task_starts_queued_and_nowhere_else(member):
    with pytest.raises(LifecycleError):
        ModifyTask.objects.create(owner=member, prompt="p", source_kind="url", state=S.SUCCEEDED)
    assert not ModifyTask.objects.exists()


@pytest.mark.django_db
def test_save_still_writes_plain_data(member):
    task = make_task(member, S.GENERATING)
    task.prompt = "an edited prompt"
    task.save()
    assert ModifyTask.objects.get(pk=task.pk).prompt == "an edited prompt"


def _app_sources():
    for package in ("modify", "lumaweb"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


class _Writes(ast.NodeVisitor):
    """Calls ``.update(field=...)`` and assignments ``x.field = ...`` that name a lifecycle field."""

    def __init__(self, path):
        self.path, self.function, self.found = path, None, []

    def visit_FunctionDef(self, node):
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    def visit_Call(self, node):
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("update", "bulk_update", "update_or_create"):
            names = {kw.arg for kw in node.keywords if kw.arg} & LIFECYCLE_FIELDS
            if names:
                self.found.append((self.path, self.function, node.lineno, sorted(names)))
        self.generic_visit(node)

    def visit_Assign(self, node):
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr in LIFECYCLE_FIELDS:
                self.found.append((self.path, self.function, node.lineno, [target.attr]))
        self.generic_visit(node)


def test_no_code_but_the_helper_writes_lifecycle_fields():
    writes = []
    for path in _app_sources():
        visitor = _Writes(str(path.relative_to(ROOT)))
        visitor.visit(ast.parse(path.read_text(), str(path)))
        writes += [w for w in visitor.found if (w[0], w[1]) not in ALLOWED]
    assert writes == []


def test_the_scan_would_see_a_raw_update():
    visitor = _Writes("example.py")
    visitor.visit(ast.parse("def f():\n    ModifyTask.objects.filter(pk=1).update(state='failed')\n    task.finished_at = 1\n"))
    assert [(w[1], w[3]) for w in visitor.found] == [("f", ["state"]), ("f", ["finished_at"])]
