"""/healthz: what a load balancer or a service manager learns from it, and what nobody learns from it."""

import logging

import pytest
from django.db import OperationalError

from modify import health
from tests.conftest import wait_for

PARTS = ("database", "broker", "storage")


@pytest.fixture
def parts_fine(monkeypatch):
    """Every check passes (no q cluster runs beside these tests); a test then breaks one."""
    for part in PARTS:
        monkeypatch.setattr(health, f"check_{part}", lambda: None)


def test_with_a_cluster_running_every_part_is_ok(db, client, qcluster):
    """The real checks: the test database, the broker, a cluster that reports in, the media storage."""

    def healthy():
        response = client.get("/healthz")
        return response if response.status_code == 200 else None

    response = wait_for(healthy, timeout=30, what="/healthz to answer 200 with the cluster running")
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"database": "ok", "broker": "ok", "storage": "ok", "status": "ok"}
    assert "no-cache" in response["Cache-Control"]  # never an old answer from a cache on the way


def test_anyone_may_ask_and_nothing_is_written_to_the_session(db, client, parts_fine):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "sessionid" not in response.cookies


@pytest.mark.parametrize("part", PARTS)
def test_a_part_that_is_down_makes_503_and_is_named(db, client, parts_fine, monkeypatch, part):
    def broken():
        raise OSError("connection to 10.0.0.7 as lumaweb:s3cr3t-passw0rd refused")

    monkeypatch.setattr(health, f"check_{part}", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    answer = response.json()
    assert answer["status"] == "degraded"
    assert answer[part] == health.DOWN[part]
    assert all(answer[other] == "ok" for other in PARTS if other != part)
    # What went wrong stays on the server: no address, user or password in the answer.
    assert "10.0.0.7" not in response.content.decode() and "s3cr3t" not in response.content.decode()


def test_the_log_says_which_part_failed_but_not_the_errors_text(db, client, parts_fine, monkeypatch, caplog):
    def broken():
        raise OSError("connection to 10.0.0.7 as lumaweb:s3cr3t-passw0rd refused")

    monkeypatch.setattr(health, "check_database", broken)
    with caplog.at_level(logging.WARNING, logger="modify.health"):
        client.get("/healthz")
    assert "database is down (OSError)" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_the_database_check_fails_when_the_database_does_not_answer(db, monkeypatch):
    class RefusingCursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql, params=None):
            raise OperationalError("could not connect to server")

    class Connection:
        def cursor(self):
            return RefusingCursor()

    assert health.check_database() is None  # the real one answers
    monkeypatch.setattr(health, "connection", Connection())
    with pytest.raises(OperationalError):
        health.check_database()
    assert health.report()["database"] == health.DOWN["database"]


def queue(**figures):
    return lambda now=None: {"waiting": 0, "cluster_running": True, **figures}


def test_the_broker_is_down_when_it_does_not_answer(db, monkeypatch):
    monkeypatch.setattr(health, "queue_health", queue(waiting=None))
    assert health.check_broker() == health.DOWN["broker"]


def test_the_broker_is_down_when_no_cluster_was_seen_lately(db, client, monkeypatch):
    """Without a cluster nothing a member submits ever moves, even if the broker answers."""
    monkeypatch.setattr(health, "queue_health", queue(cluster_running=False))
    assert health.check_broker() == health.NO_CLUSTER == "no task cluster seen in the last 3 minutes"
    monkeypatch.setattr(health, "check_storage", lambda: None)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == health.NO_CLUSTER
    monkeypatch.setattr(health, "queue_health", queue())
    assert health.check_broker() is None


def test_the_storage_check_writes_a_file_and_leaves_nothing_behind(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    assert health.check_storage() is None
    probes = tmp_path / "media" / health.PROBE_PREFIX
    assert probes.is_dir() and list(probes.iterdir()) == []


def test_the_storage_check_fails_when_media_cannot_be_written(db, client, settings, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the media directory should be")
    settings.MEDIA_ROOT = blocker / "media"
    with pytest.raises(OSError):
        health.check_storage()
    monkeypatch.setattr(health, "check_broker", lambda: None)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "broker": "ok", "storage": health.DOWN["storage"], "status": "degraded"}


def test_it_costs_a_handful_of_queries(db, client, django_assert_max_num_queries, monkeypatch):
    """Asked every few seconds by every load balancer: the database, the queue's figures, nothing per task."""
    monkeypatch.setattr(health, "check_storage", lambda: None)
    with django_assert_max_num_queries(6):
        client.get("/healthz")
