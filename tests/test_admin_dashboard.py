"""The admin's home as staff see it: tasks in flight, failures today, each key's credits with low-credit
warnings, the task queue's health with links to its jobs, and only the models staff need (the sandbox's
only while it is mounted)."""

import re
import uuid
from html import unescape
from datetime import timedelta

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule
from django_q.models import Task as QueueTask
from django_q.brokers import get_broker
from django_q.conf import Conf

from modify.models import ModifyTask
from modify.schedules import ensure_sweep_schedule
from sandbox import admin as sandbox_admin
from team import keys
from tests.factories import backdate, make_key, make_member, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
SECRET = "kie-5d1e0c9b8a7f6e5d4c3b2a1908f7e6d5"


@pytest.fixture
def admin(client, staff):
    """Staff (sam) who may see tasks, keys, members, the queue and the sandbox."""
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["modify", "auth", "django_q", "sandbox"]))
    client.force_login(staff)
    return client


@pytest.fixture(autouse=True)
def no_remembered_environment_credits():
    cache.delete(keys.ENVIRONMENT_CREDITS_CACHE_KEY)
    yield
    cache.delete(keys.ENVIRONMENT_CREDITS_CACHE_KEY)


def home(admin):
    response = admin.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def text(html):
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def row(page, row_id):
    """The text of the dashboard row ``id="row_id"``."""
    start = page.index(f'id="{row_id}"')
    return text(page[page.index(">", start) + 1: page.index("</tr>", start)])


def state_row(page, state):
    start = page.index(f'data-state="{state}"')
    return text(page[page.index(">", start) + 1: page.index("</tr>", start)])


# --- Tasks -----------------------------------------------------------------------------------------------


def test_it_counts_tasks_in_flight_by_state_and_failures_today(admin, member, other):
    for state, count in [(S.QUEUED, 2), (S.UNCONFIRMED, 1), (S.GENERATING, 3), (S.ARCHIVING, 1)]:
        for _ in range(count):
            make_task(member, state)
    make_task(other, S.GENERATING)
    make_task(member, S.SUCCEEDED)
    make_task(member, S.FAILED)
    make_task(other, S.FAILED)
    yesterday = make_task(member, S.FAILED)
    backdate(yesterday, finished_at=timezone.now() - timedelta(days=1, hours=1))
    page = home(admin)
    assert state_row(page, "queued") == "Queued 2"
    assert state_row(page, "submitting") == "Submitting 0"
    assert state_row(page, "unconfirmed") == "Awaiting the provider 1"
    assert state_row(page, "generating") == "Generating 4"
    assert state_row(page, "archiving") == "Archiving 1"
    assert row(page, "in-flight") == "In flight 8"
    assert row(page, "failed-today") == "Failed today 2"
    assert 'href="/admin/modify/modifytask/?state__exact=generating"' in page
    assert 'href="/admin/modify/modifytask/?state__exact=failed"' in page


# --- Credits ---------------------------------------------------------------------------------------------


def test_it_shows_each_keys_credits_and_warns_of_low_ones(admin, member, settings):
    settings.LUMA_LOW_CREDITS = 100
    settings.LUMA_CREDITS_PER_TASK = 10
    make_key("Plenty", secret="kie-plenty-0001", last_credits=5000)
    make_key("Running low", secret="kie-low-0002", last_credits=100)
    make_key("Empty", secret="kie-empty-0003", owner=member, last_credits=4)
    make_key("Closed and low", secret="kie-closed-0004", is_active=False, last_credits=3)
    make_key("Never asked", secret="kie-never-0005")
    page = home(admin)
    warnings = [text(w) for w in re.findall(r'<p class="errornote low-credits">(.*?)</p>', page, re.S)]
    assert warnings == [
        "Out of credits: Empty (••••0003) has 4 left.",
        "Low on credits: Running low (••••0002) has 100 left, at or under 100.",
    ]
    credits = page[page.index('id="dashboard-credits"'):page.index('id="dashboard-queue"')]
    rows = [text(r) for r in re.findall(r"<tr class=[^>]*>(.*?)</tr>", credits, re.S)]
    # Open keys by label, closed ones last; then the sandbox's own key (the environment's).
    assert rows == [
        "Empty ••••0003 maria 4 out just now",
        "Never asked ••••0005 team unknown never",
        "Plenty ••••0001 team 5000 just now",
        "Running low ••••0002 team 100 low just now",
        "Closed and low ••••0004 (closed) team 3 out just now",
        "The sandbox's key ••••-key team unknown never",
    ]


def test_the_environments_key_is_listed_without_its_secret(admin, settings):
    settings.LUMA_API_KEY = SECRET
    page = home(admin)
    assert f"LUMA_API_KEY (environment) ••••{SECRET[-4:]} team unknown never" in text(page)
    assert SECRET not in page and SECRET[:-4] not in page


def test_no_secret_reaches_the_dashboard(admin):
    key = make_key("Team key", secret=SECRET, last_credits=50)
    page = home(admin)
    assert SECRET not in page and SECRET[:-4] not in page and key.secret_encrypted not in page
    assert f"••••{SECRET[-4:]}" in page


def test_check_credits_now_asks_the_sandbox_for_every_open_key(app, admin):
    key = make_key("Sandbox key", secret="sandbox-key")
    closed = make_key("Closed", secret="sandbox-key-2", is_active=False)
    page = admin.post("/admin/modify/apikey/check-credits/", follow=True)
    assert page.request["PATH_INFO"] == "/admin/"
    html = page.content.decode()
    assert "Sandbox key (••••-key): 1000 credits left." in html
    assert "The sandbox&#x27;s key: 1000 credits left." in html
    key.refresh_from_db()
    closed.refresh_from_db()
    assert key.last_credits == 1000 and key.credits_checked_at is not None
    assert closed.last_credits is None  # closed keys are not asked
    assert "Sandbox key ••••-key team 1000 just now" in text(html)
    assert "The sandbox's key ••••-key team 1000 just now" in text(html)  # kept in the cache


def test_check_credits_now_says_which_key_the_provider_refused(app, admin):
    make_key("Wrong key", secret="not-a-sandbox-key")
    html = admin.post("/admin/modify/apikey/check-credits/", follow=True).content.decode()
    assert "Wrong key (••••-key): kie.ai refused this key: check it was copied whole." in html
    assert "not-a-sandbox-key" not in html


def test_check_credits_is_a_post(admin):
    assert admin.get("/admin/modify/apikey/check-credits/").status_code == 405


# --- The queue ---------------------------------------------------------------------------------------------


@pytest.fixture
def clusters(monkeypatch):
    """The clusters django-q2's stats name (none unless a test adds some): a cluster of another
    test run may share the cache."""
    running = []
    monkeypatch.setattr("django_q.status.Stat.get_all", staticmethod(lambda broker=None: list(running)))
    return running


def finished_job(success, minutes_ago):
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    return QueueTask.objects.create(id=uuid.uuid4().hex, name=f"job-{uuid.uuid4().hex[:6]}", func="modify.jobs.sweep",
                                    started=moment, stopped=moment, success=success)


@pytest.fixture
def queue(monkeypatch):
    """A queue of the configured broker (the database's, or Redis's) that no running cluster takes from."""
    broker = get_broker(list_key=f"dashboard-test-{uuid.uuid4().hex}")
    monkeypatch.setattr("modify.dashboard.get_broker", lambda: broker)
    yield broker
    broker.delete_queue()


def test_it_shows_the_queues_health(admin, clusters, queue):
    ensure_sweep_schedule(Schedule)
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=30))  # no scheduler moved it since
    queue.enqueue("a job")
    queue.enqueue("another job")
    page = home(admin)
    assert row(page, "queued") == "Jobs waiting 2"
    assert row(page, "last-success") == "Last success none kept"
    assert row(page, "last-failure") == "Last failure none kept"
    assert row(page, "cluster") == "Workers not seen"

    finished_job(success=True, minutes_ago=1)
    finished_job(success=False, minutes_ago=10)
    finished_job(success=False, minutes_ago=60 * 30)  # more than a day ago
    page = home(admin)
    assert row(page, "last-success") == "Last success 1 minute ago"
    assert row(page, "last-failure") == "Last failure 10 minutes ago · 1 in the last day"
    assert row(page, "cluster") == "Workers running · last heard 1 minute ago"


def test_a_scheduler_moving_the_sweep_counts_as_a_running_cluster(admin, clusters):
    ensure_sweep_schedule(Schedule)
    Schedule.objects.update(next_run=timezone.now() + timedelta(seconds=30))
    assert row(home(admin), "cluster").startswith("Workers running")
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=10))
    assert row(home(admin), "cluster") == "Workers not seen"


def test_a_cluster_whose_stats_are_shared_counts_as_running(admin, clusters):
    ensure_sweep_schedule(Schedule)
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=30))
    assert row(home(admin), "cluster") == "Workers not seen"
    clusters.append(object())
    assert row(home(admin), "cluster") == "Workers running (1 cluster)"


def test_without_the_sweep_schedule_it_says_how_to_make_it(admin):
    Schedule.objects.all().delete()
    assert "Sweep not scheduled : run manage.py bootstrap" in text(home(admin))


def test_it_links_to_the_queues_jobs_instead_of_listing_its_models(admin):
    page = home(admin)
    queue = page[page.index('id="dashboard-queue"'):]
    queue = queue[: queue.index("</div>")]
    queued_jobs = ["/admin/django_q/ormq/"] if Conf.ORM else []  # django-q2 lists them only for its ORM broker
    for url in ("/admin/django_q/failure/", "/admin/django_q/schedule/", "/admin/django_q/success/", *queued_jobs):
        assert f'href="{url}"' in queue, url
    apps = page[page.index('class="app-'):]
    assert "/admin/django_q/" not in apps  # not among the apps: the dashboard links them
    assert admin.get("/admin/django_q/failure/").status_code == 200
    assert admin.get("/admin/django_q/schedule/").status_code == 200


# --- Whose, and at what cost -------------------------------------------------------------------------------


def test_members_cannot_open_it(client, member):
    client.force_login(member)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client.post("/admin/modify/apikey/check-credits/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_it_costs_the_same_queries_for_few_or_many_tasks(admin, member):
    def count():
        with CaptureQueriesContext(connection) as queries:
            home(admin)
        return len(queries)

    for state in (S.QUEUED, S.GENERATING, S.FAILED, S.SUCCEEDED):
        make_task(member, state)
    make_key("One", secret="kie-one-0001", last_credits=10)
    few = count()
    others = [make_member(f"m{i}") for i in range(5)]
    for i in range(40):
        make_task(others[i % 5], [S.QUEUED, S.GENERATING, S.FAILED, S.SUCCEEDED][i % 4])
    for i in range(5):
        make_key(f"Key {i}", secret=f"kie-key-{i:04d}", owner=others[i], last_credits=500)
    assert count() == few <= 16


# --- The sandbox's models, only while it is mounted ---------------------------------------------------------


@pytest.fixture
def sandbox_switch(settings):
    """``switch(enabled)``: set SANDBOX_ENABLED and register the sandbox's admin again, as at start-up;
    put back as it was afterwards."""
    was = settings.SANDBOX_ENABLED

    def switch(enabled):
        settings.SANDBOX_ENABLED = enabled
        sandbox_admin.register(django_admin.site)

    yield switch
    switch(was)


def test_the_sandboxs_models_are_listed_only_while_it_is_enabled(admin, sandbox_switch):
    sandbox_switch(True)
    assert 'href="/admin/sandbox/"' in home(admin)
    assert admin.get("/admin/sandbox/task/").status_code == 200
    sandbox_switch(False)
    page = home(admin)
    assert "/admin/sandbox/" not in page and "Sandbox provider" not in page
    assert 'href="/admin/modify/"' in page  # the app's own models stay


def test_registering_twice_changes_nothing(settings):
    site = django_admin.AdminSite(name="twice")
    settings.SANDBOX_ENABLED = True
    sandbox_admin.register(site)
    sandbox_admin.register(site)
    assert {model._meta.label for model in site._registry} == {"sandbox.Account", "sandbox.Task", "sandbox.UploadedFile"}
    settings.SANDBOX_ENABLED = False
    sandbox_admin.register(site)
    assert site._registry == {}
