"""manage.py bootstrap (run by `make run`): the lifecycle sweep and key credits schedules and the demo admin,
idempotently."""

import pytest
from django.http import HttpRequest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils.module_loading import import_string
from django_q.models import Schedule

from modify import jobs
from modify.schedules import SWEEP_SCHEDULE_NAME
from team import jobs as team_jobs
from team.schedules import CREDITS_SCHEDULE_NAME

OLD_SCHEDULE_NAME = "lumaweb: poll provider tasks"  # as migration 0002 made it

pytestmark = pytest.mark.django_db


def test_generates_an_admin_password_once_and_prints_it(monkeypatch, capsys, client):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    call_command("bootstrap")
    first = capsys.readouterr().out
    password = first.split("password: ")[1].split()[0]
    assert client.login(request=HttpRequest(), username="admin", password=password)
    call_command("bootstrap")
    assert password not in capsys.readouterr().out
    assert client.login(request=HttpRequest(), username="admin", password=password)
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser


def test_demo_admin_password_is_applied_at_every_start(monkeypatch, client):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "first-secret-1")
    call_command("bootstrap")
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "second-secret-2")
    call_command("bootstrap")
    assert not client.login(request=HttpRequest(), username="admin", password="first-secret-1")
    assert client.login(request=HttpRequest(), username="admin", password="second-secret-2")


def test_recreates_a_deleted_sweep_schedule_once(capsys):
    Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME).delete()
    call_command("bootstrap")
    call_command("bootstrap")
    schedule = Schedule.objects.get(name=SWEEP_SCHEDULE_NAME)
    assert schedule.func == "modify.jobs.sweep"
    assert import_string(schedule.func) is jobs.sweep  # the cluster can find what it names
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_the_migrated_schedule_is_the_sweep_and_the_old_poll_schedule_is_gone():
    assert Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME, func="modify.jobs.sweep").count() == 1
    assert not Schedule.objects.filter(name=OLD_SCHEDULE_NAME).exists()
    assert not Schedule.objects.filter(func="modify.jobs.poll_due_tasks").exists()


def test_a_schedule_changed_by_hand_is_put_back(capsys):
    Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME).update(func="modify.jobs.poll_due_tasks", minutes=60, repeats=0)
    call_command("bootstrap")
    schedule = Schedule.objects.get(name=SWEEP_SCHEDULE_NAME)
    assert (schedule.func, schedule.minutes, schedule.repeats) == ("modify.jobs.sweep", 1, -1)
    assert Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME).count() == 1


def test_recreates_the_credits_schedule_once_every_refresh_interval(settings):
    settings.LUMA_CREDITS_REFRESH_MINUTES = 7
    Schedule.objects.filter(name=CREDITS_SCHEDULE_NAME).delete()
    call_command("bootstrap")
    call_command("bootstrap")
    schedule = Schedule.objects.get(name=CREDITS_SCHEDULE_NAME)
    assert schedule.func == "team.jobs.refresh_credits"
    assert import_string(schedule.func) is team_jobs.refresh_credits  # the cluster can find what it names
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 7, -1)
    assert Schedule.objects.filter(func="team.jobs.refresh_credits").count() == 1


def test_a_credits_schedule_changed_by_hand_follows_the_setting_again(settings):
    settings.LUMA_CREDITS_REFRESH_MINUTES = 15
    call_command("bootstrap")
    Schedule.objects.filter(name=CREDITS_SCHEDULE_NAME).update(func="team.jobs.nothing", minutes=600, repeats=0)
    call_command("bootstrap")
    schedule = Schedule.objects.get(name=CREDITS_SCHEDULE_NAME)
    assert (schedule.func, schedule.minutes, schedule.repeats) == ("team.jobs.refresh_credits", 15, -1)
    assert Schedule.objects.get(name=SWEEP_SCHEDULE_NAME).func == "modify.jobs.sweep"  # the sweep's is its own
