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
    """Writes that may reach a lifecycle field: ``.update(field=...)`` (or with ``**values``, which
    could hold any), ``x.field = ...``, ``x.field += ...`` and ``setattr(x, "field", ...)``."""

    def __init__(self, path):
        self.path, self.function, self.found = path, None, []

    def visit_FunctionDef(self, node):
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    def visit_Call(self, node):
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("update", "bulk_update", "update_or_create"):
            names = {kw.arg for kw in node.keywords if kw.arg} & LIFECYCLE_FIELDS
            if any(kw.arg is None for kw in node.keywords):
                names.add("**")
            if names:
                self.found.append((self.path, self.function, node.lineno, sorted(names)))
        if isinstance(node.func, ast.Name) and node.func.id == "setattr" and len(node.args) > 1:
            field = node.args[1]
            if not isinstance(field, ast.Constant) or field.value in LIFECYCLE_FIELDS:
                self.found.append((self.path, self.function, node.lineno, ["setattr"]))
        self.generic_visit(node)

    def visit_Assign(self, node):
        for target in node.targets:
            self._target(target, node.lineno)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node.target, node.lineno)
        self.generic_visit(node)

    def _target(self, target, lineno):
        if isinstance(target, ast.Attribute) and target.attr in LIFECYCLE_FIELDS:
            self.found.append((self.path, self.function, lineno, [target.attr]))


def test_no_code_but_the_helper_writes_lifecycle_fields():
    writes = []
    for path in _app_sources():
        visitor = _Writes(str(path.relative_to(ROOT)))
        visitor.visit(ast.parse(path.read_text(), str(path)))
        writes += [w for w in visitor.found if (w[0], w[1]) not in ALLOWED]
    assert writes == []


def test_the_scan_would_see_a_raw_update():
    visitor = _Writes("example.py")
    visitor.visit(ast.parse(
        "def f():\n    ModifyTask.objects.filter(pk=1).update(state='failed')\n    task.finished_at = 1\n"
        "    task.poll_count += 1\n    setattr(task, 'state', 'failed')\n    qs.update(**values)\n"
    ))
    assert [(w[1], w[3]) for w in visitor.found] == [
        ("f", ["state"]), ("f", ["finished_at"]), ("f", ["poll_count"]), ("f", ["setattr"]), ("f", ["**"])]


def test_the_sandbox_never_touches_the_apps_tasks():
    """The scan leaves ``sandbox`` out (its own models have fields of the same names); it must not import ours."""
    for path in (ROOT / "sandbox").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not any(m and m.startswith("modify.models") for m in modules), path


@pytest.mark.django_db
def test_the_guard_holds_after_a_partial_refresh_and_after_a_plain_insert(member):
    task = make_task(member, S.GENERATING)
    task.refresh_from_db(fields=["prompt"])
    task.next_poll_at = None
    with pytest.raises(LifecycleError):
        task.save()
    fresh = ModifyTask(owner=member, prompt="p", source_kind="url", source_url="https://example.com/a.mp4")
    fresh.save()
    fresh.state = S.SUCCEEDED
    with pytest.raises(LifecycleError):
        fresh.save()
    assert ModifyTask.objects.get(pk=fresh.pk).state == S.QUEUED
