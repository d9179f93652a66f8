"""gunicorn's settings for lumaweb: ``gunicorn -c lumaweb/gunicorn.conf.py`` (bin/run and deploy/ use it).

Threaded workers (gthread): a status poll or a page mostly waits on the
database, so threads keep a worker busy while one process per CPU lets
requests run in parallel despite the GIL. Everything is read from the
environment, with defaults sized for the machine it starts on:

* ``HOST``/``PORT`` (127.0.0.1:8000) where it listens;
* ``WEB_CONCURRENCY`` worker processes (one per CPU, at least 2, at most 16);
* ``GUNICORN_THREADS`` threads per worker (4);
* ``GUNICORN_TIMEOUT`` seconds a worker may be silent before it is restarted (60),
  ``GUNICORN_GRACEFUL_TIMEOUT`` seconds a stop waits for requests in flight (20).

The access log goes through the app's redaction (``modify.logfilters``):
callback and invitation URLs carry their secret in the path, which gunicorn
would otherwise print with every request.
"""

import os
import sys
from pathlib import Path

from gunicorn.glogging import Logger

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `gunicorn` run from elsewhere, or a checkout not installed with pip
    sys.path.insert(0, str(ROOT))

from modify.logfilters import RedactCallbackTokens  # noqa: E402  (needs ROOT on the path)


def _env_int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def machine_cpus():
    """The CPUs this process may run on (a container's or taskset's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(cpus=None):
    """One worker process per CPU, at least 2 (one busy restarting never stops the site), at most 16
    (each holds a whole Django in memory; more is WEB_CONCURRENCY's to say)."""
    return min(max(cpus or machine_cpus(), 2), 16)


class RedactingLogger(Logger):
    """gunicorn's logger whose access and error lines go through the app's redaction of secret URLs."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(f, RedactCallbackTokens) for f in log.filters):
                log.addFilter(RedactCallbackTokens())


def _bind():
    host = os.environ.get("HOST", "").strip() or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"{host}:{os.environ.get('PORT', '').strip() or '8000'}"


chdir = str(ROOT)
wsgi_app = "lumaweb.wsgi:application"
bind = [_bind()]
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", default_workers())
threads = _env_int("GUNICORN_THREADS", 4)
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = 5
# Uploads up to LUMA_MAX_VIDEO_BYTES are streamed by Django into temporary files; nothing to tune here.
accesslog = "-"
errorlog = "-"
logger_class = RedactingLogger
proc_name = "lumaweb"
# gunicorn's control socket lives in one place per user ($HOME/.gunicorn): two servers of the same
# user (a test beside `make run`) would fight over it. Nothing here uses it.
control_socket_disable = True
