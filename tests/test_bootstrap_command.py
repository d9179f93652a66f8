"""manage.py bootstrap (run by `make run`): the poll schedule and the demo admin, idempotently."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_q.models import Schedule

from modify.schedules import POLL_SCHEDULE_NAME

pytestmark = pytest.mark.django_db


def test_generates_an_admin_password_once_and_prints_it(monkeypatch, capsys, client):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    call_command("bootstrap")
    first = capsys.readouterr().out
    password = first.split("password: ")[1].split()[0]
    assert client.login(username="admin", password=password)
    call_command("bootstrap")
    assert password not in capsys.readouterr().out
    assert client.login(username="admin", password=password)
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser


def test_demo_admin_password_is_applied_at_every_start(monkeypatch, client):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "first-secret-1")
    call_command("bootstrap")
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "second-secret-2")
    call_command("bootstrap")
    assert not client.login(username="admin", password="first-secret-1")
    assert client.login(username="admin", password="second-secret-2")


def test_recreates_a_deleted_poll_schedule_once(capsys):
    Schedule.objects.filter(name=POLL_SCHEDULE_NAME).delete()
    call_command("bootstrap")
    call_command("bootstrap")
    assert Schedule.objects.filter(name=POLL_SCHEDULE_NAME, func="modify.jobs.poll_due_tasks").count() == 1
