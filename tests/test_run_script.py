"""`make run` for real: bin/run serves through gunicorn beside a q cluster, and a stop ends all of it.

Each test starts the script as a terminal would (its own process group, SIGINT at its default), on a
free port with a fresh LUMAWEB_VAR_DIR and the embedded defaults (SQLite, the ORM broker: the
database and Redis CI gives the suite are not the script's to migrate), waits for /healthz, then
stops it the way a person or a service manager does and looks for any process left.
"""

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, wait_for

PYTHON = ROOT / ".venv" / "bin" / "python"
STOPPED_WITHIN = 10  # seconds, from the signal to the last process gone
# The test run's own settings must not leak into the script's: it makes its own, as on a fresh clone.
NOT_PASSED_ON = ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "STATIC_ROOT", "PUBLIC_BASE_URL", "DEBUG", "LUMA_",
                 "SANDBOX_", "SECURE_", "BEHIND_", "AWS_", "Q_", "WEB_CONCURRENCY", "GUNICORN_", "HOST", "PORT",
                 "DJANGO_ALLOW_ASYNC_UNSAFE")

pytestmark = pytest.mark.skipif(not PYTHON.exists(), reason="bin/run needs the project's venv (.venv, made by make)")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes():
    """{pid: (ppid, pgid, state, start time)} of every process on the machine, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (command name) "
        found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0], int(fields[19]))
    return found


def family(root):
    """The processes descended from ``root`` (itself included), as ``{(pid, start time)}``, and their groups."""
    table = processes()
    members, groups, frontier = set(), set(), [root]
    while frontier:
        pid = frontier.pop()
        if pid in table:
            members.add((pid, table[pid][3]))
            groups.add(table[pid][1])
            frontier.extend(child for child, (ppid, *_rest) in table.items() if ppid == pid)
    return members, groups


def left_of(members, groups):
    """Which of ``members``, or which process in one of ``groups``, still runs (a zombie does not count)."""
    return sorted(
        pid for pid, (_ppid, pgid, state, started) in processes().items()
        if state != "Z" and ((pid, started) in members or pgid in groups)
    )


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    """One LUMAWEB_VAR_DIR for the module: the first start migrates it, the next ones reuse it, as at home."""
    return tmp_path_factory.mktemp("run-var")


@pytest.fixture
def started(var_dir, tmp_path):
    """``bin/run`` serving on a free port: ``(process, base URL, log path)``; stopped by force if a test did not."""
    port = free_port()
    log_path = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_PASSED_ON)}
    env.update(LUMAWEB_VAR_DIR=str(var_dir), PORT=str(port), DEMO_ADMIN_PASSWORD="run-script-test",
               WEB_CONCURRENCY="2", GUNICORN_THREADS="2", Q_WORKERS="1", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(ROOT / "bin" / "run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            # A shell started in the background may have SIGINT ignored, and so would its children:
            # give the script the default a terminal gives it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if process.poll() is not None:
            raise AssertionError(f"bin/run exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            response = requests.get(f"{base}/healthz", timeout=5)
        except requests.RequestException:  # not listening yet, or its workers still starting
            return None
        return response if response.status_code == 200 else None

    groups = {process.pid}
    try:
        # The whole answer is 200 only once the cluster has reported in beside the server.
        wait_for(healthy, timeout=90, interval=0.3, what="bin/run to serve /healthz with everything ok")
        groups |= family(process.pid)[1]
        yield process, base, log_path
    finally:  # a test that failed half-way leaves nothing running
        groups |= family(process.pid)[1]
        if process.poll() is None or left_of(set(), groups):
            for group in groups:
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        process.wait(timeout=10)


def stop_and_time(process, how, members, groups):
    """Send ``how`` to the script's process group; seconds until it and all of ``members`` and ``groups`` are gone."""
    start = time.monotonic()
    os.killpg(process.pid, how)
    while time.monotonic() - start < STOPPED_WITHIN + 5:
        if process.poll() is not None and not left_of(members, groups):
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def everything_started(process):
    """The script's family once gunicorn (master and workers) and the cluster (parent, sentinel, workers,
    monitor, pusher) are all up and nothing new appears: ``(members, groups)``."""
    previous = [None]

    def complete():
        members, groups = family(process.pid)
        table = processes()
        sizes = [sum(1 for _ppid, pgid, _state, _started in table.values() if pgid == group)
                 for group in groups if group != process.pid]
        # gunicorn's group (master + 2 workers) and the cluster's (5 processes with one worker), at least.
        ready = sum(1 for size in sizes if size >= 3) >= 2 and max(sizes, default=0) >= 5
        settled, previous[0] = members == previous[0], members
        return (members, groups) if ready and settled else None

    return wait_for(complete, timeout=30, interval=0.5, what="gunicorn's workers and the cluster's processes")


def leader_running(groups, command):
    """The group leader among ``groups`` whose command line has ``command`` in it."""
    for group in sorted(groups):
        try:
            if command in (Path("/proc") / str(group) / "cmdline").read_bytes().decode(errors="replace"):
                return group
        except OSError:
            continue
    raise AssertionError(f"no process group runs {command!r}")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_it_serves_through_gunicorn_and_a_stop_ends_every_process(started, how):
    process, base, log_path = started
    health = requests.get(f"{base}/healthz", timeout=5)
    assert health.headers["Server"].startswith("gunicorn")
    assert health.json() == {"database": "ok", "broker": "ok", "storage": "ok", "status": "ok"}
    # whitenoise serves the static files.
    css = requests.get(f"{base}/static/css/app.css", timeout=5)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    members, groups = everything_started(process)
    leader_running(groups, "gunicorn")
    leader_running(groups, "qcluster")

    took = stop_and_time(process, how, members, groups)
    assert took is not None and took <= STOPPED_WITHIN, (
        f"still running after {STOPPED_WITHIN}s: {left_of(members, groups)}\n{log_path.read_text()[-3000:]}"
    )
    assert process.returncode == 128 + how  # the script says how it ended
    assert "lumaweb: stopped." in log_path.read_text()


def test_a_cluster_that_hangs_on_its_way_out_is_killed_and_the_script_still_ends(started):
    """The known hang: the cluster's parent, blocked on a multiprocessing semaphore, never acts on its
    TERM. Frozen here with SIGSTOP it cannot either; the script kills its whole group after the grace."""
    process, base, log_path = started
    # Secrets in URLs meanwhile: gunicorn's access log prints them through the app's redaction.
    requests.post(f"{base}/callbacks/s3cr3t-callback-T0ken/", timeout=5)
    requests.get(f"{base}/join/s3cr3t-invitation-T0ken/", timeout=5)
    requests.get(f"{base}/healthz", headers={"Referer": f"{base}/join/s3cr3t-referer-T0ken/"}, timeout=5)
    members, groups = everything_started(process)
    cluster = leader_running(groups, "qcluster")
    os.kill(cluster, signal.SIGSTOP)

    took = stop_and_time(process, signal.SIGTERM, members, groups)
    log = log_path.read_text()
    assert took is not None and took <= STOPPED_WITHIN, (
        f"still running after {STOPPED_WITHIN}s: {left_of(members, groups)}\n{log[-3000:]}"
    )
    assert f"process {cluster} did not stop" in log
    assert log.count("[redacted]") >= 3 and "/callbacks/[redacted]/" in log and "/join/[redacted]/" in log
    assert "s3cr3t" not in log


# --- The server's settings (lumaweb/gunicorn.conf.py), as gunicorn reads them -----------------------------


def gunicorn_conf(monkeypatch, **env):
    for name in ("HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "lumaweb" / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workers_are_sized_for_the_machine_and_the_environment_overrides_them(monkeypatch):
    conf = gunicorn_conf(monkeypatch)
    assert conf.worker_class == "gthread"
    assert conf.workers == min(max(conf.machine_cpus(), 2), 16)
    assert [conf.default_workers(cpus) for cpus in (1, 2, 8, 64)] == [2, 2, 8, 16]
    assert conf.threads == 4 and conf.bind == ["127.0.0.1:8000"]
    conf = gunicorn_conf(monkeypatch, WEB_CONCURRENCY="3", GUNICORN_THREADS="8", HOST="0.0.0.0", PORT="9000")
    assert (conf.workers, conf.threads, conf.bind) == (3, 8, ["0.0.0.0:9000"])
    assert gunicorn_conf(monkeypatch, HOST="::1").bind == ["[::1]:8000"]
