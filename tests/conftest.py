"""Shared fixtures: real services, a real django-q2 cluster, a real browser.

CI sets ``REQUIRE_POSTGRES``, ``REQUIRE_REDIS`` and ``REQUIRE_BROWSER``: then
a missing service fails the run instead of skipping tests.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.clips import make_clip
from tests.factories import make_member, make_staff
from tests.httpserver import local_server

ROOT = Path(__file__).resolve().parent.parent
E2E_HMAC_KEY = "e2e-webhook-key"
SANDBOX_KEY = "sandbox-key"
SANDBOX_AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def _required(name):
    return os.environ.get(name, "").strip() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def required_services():
    engine = settings.DATABASES["default"]["ENGINE"]
    if _required("REQUIRE_POSTGRES") and "postgresql" not in engine:
        pytest.fail(f"REQUIRE_POSTGRES is set but the database engine is {engine}: set DATABASE_URL.")
    if _required("REQUIRE_REDIS"):
        if not settings.REDIS_URL:
            pytest.fail("REQUIRE_REDIS is set but REDIS_URL is not.")
        import redis

        redis.from_url(settings.REDIS_URL).ping()


@pytest.fixture(scope="session", autouse=True)
def remove_stale_test_databases():
    """Each run has its own SQLite test file (var/test-<pid>.sqlite3); clear those of finished runs."""
    for path in Path(settings.VAR_DIR).glob("test-*.sqlite3*"):
        pid = path.name.split("-")[1].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def media_through_the_app():
    """Django's live server answers MEDIA_URL itself (static.serve: no login, no Range).
    Send /media/ to the app's own view instead; in place before live_server starts."""
    import django.test.testcases as testcases

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(testcases, "_MediaFilesHandler", lambda application: application)
        yield


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """Without Redis the cache is a folder shared with the cluster: this run's own, not var/cache,
    so that two runs on one machine (or the app beside the tests) never clear each other's."""
    from django.test.utils import override_settings

    if settings.REDIS_URL:
        yield None
        return
    folder = tmp_path_factory.mktemp("cache")
    with override_settings(CACHES={"default": {**settings.CACHES["default"], "LOCATION": str(folder)}}):
        yield folder


@pytest.fixture(autouse=True)
def empty_cache(cache_dir):
    """Each test starts from an empty cache."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def media_root(tmp_path_factory):
    """All files the tests write land in a temporary MEDIA_ROOT, shared with the cluster."""
    root = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def clip(tmp_path):
    """``clip(seconds=2, **kwargs)`` → path of a freshly generated test video."""
    counter = iter(range(1000))

    def make(seconds=2.0, container="mp4", **kwargs):
        return make_clip(tmp_path / f"clip-{next(counter)}.{container}", seconds=seconds, container=container, **kwargs)

    return make


@pytest.fixture
def member(db):
    return make_member("maria")


@pytest.fixture
def other(db):
    return make_member("ivan")


@pytest.fixture
def staff(db):
    return make_staff("sam")


@pytest.fixture
def signed_in(client, member):
    """A test client signed in as ``member``."""
    client.force_login(member)
    return client


@pytest.fixture
def app(live_server, settings):
    """The app and its sandbox on a live server, talking real HTTP to each other (no cluster)."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.ALLOWED_HOSTS = ["*"]
    return live_server


@pytest.fixture
def api(live_server, settings):
    """The sandbox's base URL on a live server."""
    settings.ALLOWED_HOSTS = ["*"]
    return f"{live_server.url}/sandbox"


def upload_clip(api, path, name="clip.mp4"):
    """Upload ``path`` through the sandbox's stream upload; its public download URL."""
    with open(path, "rb") as fh:
        answer = requests.post(
            f"{api}/api/file-stream-upload", headers=SANDBOX_AUTH, files={"file": (name, fh)}, data={"uploadPath": "tests"}
        ).json()
    assert answer["code"] == 200, answer
    return answer["data"]["downloadUrl"]


@pytest.fixture
def callback_receiver():
    """A real HTTP server that records every callback it is sent, as ``(headers, body)``."""
    received = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args):
            pass

    with local_server(Handler, received=received) as server:
        server.url += "/hook"
        yield server


@pytest.fixture
def inject_faults(settings):
    """``inject_faults("rate_limit:2,callback_fail")``: set SANDBOX_FAULTS with fresh counters."""

    def inject(spec):
        settings.SANDBOX_FAULTS = f"{spec},run={uuid.uuid4().hex}"

    return inject


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto's) on a free port, for the run; a failure, not a skip,
    when ``REQUIRE_S3`` is set and moto[server] is missing."""
    from tests.s3server import start_moto_server

    try:
        endpoint, stop = start_moto_server()
    except ImportError as error:
        if _required("REQUIRE_S3"):
            pytest.fail(f"REQUIRE_S3 is set but moto[server] is missing ({error}): pip install -e '.[test]'.")
        pytest.skip("moto[server] is not installed")
    yield endpoint
    stop()


@pytest.fixture
def s3(s3_server, settings):
    """A fresh private bucket on ``s3_server`` (``tests.s3server.Bucket``), the default storage
    for this test, configured as the environment would (``AWS_*`` settings)."""
    from tests.s3server import Bucket

    bucket = Bucket(s3_server)
    for name, value in bucket.settings.items():
        setattr(settings, name, value)
    # Set last: changing STORAGES makes Django drop the storage it built, so the next use reads the above.
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "modify.s3_storage.PrivateS3Storage"}}
    return bucket


def _test_database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def qcluster(django_db_setup, django_db_blocker, live_server, media_root, cache_dir, tmp_path_factory):
    """Real ``manage.py qcluster`` processes on the test database: the app's cluster (yielded) and
    the sandbox's own (``Q_CLUSTER_NAME=sandbox``), as ``bin/run`` starts them."""
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    log_dir = tmp_path_factory.mktemp("qcluster")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(media_root),
        **({"CACHE_DIR": str(cache_dir)} if cache_dir else {}),
        "PUBLIC_BASE_URL": live_server.url,
        "SANDBOX_WEBHOOK_HMAC_KEY": E2E_HMAC_KEY,
        "SANDBOX_MIN_SECONDS": "0",
        "Q_WORKERS": "2",
    }
    clusters = {}
    for name, extra in {"app": {}, "sandbox": {"Q_CLUSTER_NAME": "sandbox"}}.items():
        log = open(log_dir / f"{name}.log", "w")
        clusters[name] = (subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
        ), log)
    for process, log in clusters.values():  # up, so that no test's timing includes a start
        wait_for(lambda: process.poll() is not None or "running." in Path(log.name).read_text(), timeout=60,
                 what="the q cluster to start")
    clusters["app"][0].env = env  # for a test that starts one more like it (tests/test_two_clusters.py)
    yield clusters["app"][0]
    for process, _ in clusters.values():
        process.send_signal(signal.SIGTERM)
    for process, log in clusters.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if process.returncode not in (0, -signal.SIGTERM):
            print(Path(log.name).read_text()[-5000:])


@pytest.fixture
def e2e(qcluster, app, settings):
    """``app`` plus a django-q2 cluster working for it, with callbacks signed."""
    settings.LUMA_WEBHOOK_HMAC_KEY = E2E_HMAC_KEY
    settings.SANDBOX_WEBHOOK_HMAC_KEY = E2E_HMAC_KEY
    return app


def wait_for(predicate, timeout=60, interval=0.25, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_state(task, states, timeout=90):
    """Reload ``task`` until it reaches one of ``states``; return it."""
    states = {states} if isinstance(states, str) else set(states)

    def reached():
        task.refresh_from_db()
        return task.state in states

    wait_for(reached, timeout=timeout, what=f"task {task.pk} to reach {states} (it is {task.state})")
    return task


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Playwright; a failure, not a skip, when REQUIRE_BROWSER is set."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        if _required("REQUIRE_BROWSER"):
            pytest.fail("REQUIRE_BROWSER is set but Chromium is not installed (apt-get install chromium).")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the tests still
    # use the ORM synchronously beside it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()
