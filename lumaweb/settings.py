"""Settings for lumaweb, read from environment variables with safe defaults.

The embedded default needs no configuration at all: SQLite in ``var/``, the
django-q2 ORM broker, and the built-in sandbox provider. Setting
``DATABASE_URL``, ``REDIS_URL`` and ``LUMA_API_KEY`` moves the same code to
PostgreSQL, Redis and the real kie.ai service.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LUMAWEB_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _secret_key():
    """The SECRET_KEY from the environment, else one generated once per checkout.

    It also derives the key that encrypts provider API keys at rest, so it
    must stay stable across restarts: it is kept in ``var/secret_key``.
    """
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = VAR_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "lumaweb.apps.LumawebAdminConfig",  # django.contrib.admin, with the dashboard on its home
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_q",
    "axes",
    "modify",
    "team",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "modify.middleware.HtmxLoginRedirectMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before checking the password
    "lumaweb.auth.CachedModelBackend",  # Django's, with the signed-in user kept in the cache
]

ROOT_URLCONF = "lumaweb.urls"
WSGI_APPLICATION = "lumaweb.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "modify.context_processors.provider",
                "team.context_processors.team",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'lumaweb.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),  # reuse connections across requests (gunicorn threads)
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the django-q2 cluster share the file: WAL lets
    # readers run beside a writer, IMMEDIATE takes the write lock up front so
    # that a transaction never fails half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests share the database with a django-q2 cluster in another process,
    # so the test database is a file, not memory; one per test run.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and queue --------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            # On disk, so the web server and the q cluster see the same entries (credits, health).
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.get("CACHE_DIR", str(VAR_DIR / "cache")),
        }
    }

Q_CLUSTER = {
    # Fixed: django-q2 reads Q_CLUSTER_NAME itself, to start one of ALT_CLUSTERS instead.
    "name": "lumaweb",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 600),
    "retry": env_int("Q_TIMEOUT", 600) + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "poll": 0.2,
    "label": "Task queue",
    # The sandbox's renders, on their own queue (always the ORM broker's table; sandbox/schedules.py):
    # started with `Q_CLUSTER_NAME=sandbox manage.py qcluster`.
    "ALT_CLUSTERS": {"sandbox": {"workers": env_int("SANDBOX_Q_WORKERS", 2), "orm": "default"}},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth, i18n, static, media ----------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studio"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Development serves static files from the source folders; production from STATIC_ROOT's compressed copies.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Media in S3-compatible object storage, shared by every host: set the bucket (and, off AWS, the
# endpoint). The bucket stays private: members reach a file through the app's check, then a
# presigned URL valid AWS_QUERYSTRING_EXPIRE seconds (modify/storage.py, modify/s3_storage.py).
# Keys are read from the environment by boto3 itself (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# or an instance role), never copied into the settings.
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None
AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME", "").strip() or None
AWS_S3_ADDRESSING_STYLE = os.environ.get("AWS_S3_ADDRESSING_STYLE", "").strip() or None  # "path" for MinIO and the like
AWS_QUERYSTRING_EXPIRE = env_int("AWS_QUERYSTRING_EXPIRE", 300)
AWS_DEFAULT_ACL = None  # private objects (PrivateS3Storage insists, whatever is set here)
AWS_QUERYSTRING_AUTH = True
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {"BACKEND": "modify.s3_storage.PrivateS3Storage"}

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
# Sessions are read from the cache (Redis with REDIS_URL, else the file cache every process
# shares), so the studio's poll every 3 s does not read the session table; still written
# through to the database, so a cleared cache signs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# Behind a proxy that terminates HTTPS and sets X-Forwarded-Proto: requests count as
# secure (CSRF origin checks, absolute URLs) and cookies are sent over HTTPS only.
BEHIND_HTTPS_PROXY = env_bool("BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Served over HTTPS (a public https:// address, not debugging): cookies over HTTPS only, plain
# HTTP redirected (SECURE_SSL_REDIRECT=0 where the proxy redirects itself) and HSTS, so that
# `manage.py check --deploy` is clean. With an http:// address (make run) all of it stays off.
SERVED_OVER_HTTPS = os.environ.get("PUBLIC_BASE_URL", "").strip().lower().startswith("https://") and not DEBUG
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", BEHIND_HTTPS_PROXY or SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SERVED_OVER_HTTPS)
# Load balancers and service managers ask for the health check over plain HTTP, on the inside.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$"]
# A year by default; includeSubDomains covers the subdomains of the app's own host, and preload
# only matters once someone submits the domain to the browsers' list.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600) if SERVED_OVER_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_callback_tokens": {"()": "modify.logfilters.RedactCallbackTokens"}},
    "formatters": {"server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_callback_tokens"]},
        "server": {"class": "logging.StreamHandler", "formatter": "server", "filters": ["redact_callback_tokens"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # django-axes tells every sign-in at INFO; lockouts (what staff need) are warnings.
        "axes": {"level": "WARNING"},
    },
}

# --- The provider -------------------------------------------------------------
# Where the app is reachable from the provider (callbacks) and from itself
# (the sandbox). ``make run`` sets it to http://$HOST:$PORT.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
LUMA_API_KEY = os.environ.get("LUMA_API_KEY", "").strip()
# Empty means: the real service when a key is configured, else the sandbox.
LUMA_API_BASE = os.environ.get("LUMA_API_BASE", "").strip().rstrip("/")
LUMA_UPLOAD_BASE = os.environ.get("LUMA_UPLOAD_BASE", "").strip().rstrip("/")
LUMA_WEBHOOK_HMAC_KEY = os.environ.get("LUMA_WEBHOOK_HMAC_KEY", "").strip()
LUMA_REAL_API_BASE = "https://api.kie.ai"
LUMA_REAL_UPLOAD_BASE = "https://kieai.redpandaai.co"
LUMA_HTTP_TIMEOUT = float(os.environ.get("LUMA_HTTP_TIMEOUT", "30"))
# Limits enforced before spending credits (the provider's own).
LUMA_MAX_VIDEO_BYTES = env_int("LUMA_MAX_VIDEO_BYTES", 500 * 1024 * 1024)
LUMA_MAX_VIDEO_SECONDS = float(os.environ.get("LUMA_MAX_VIDEO_SECONDS", "10"))
# Lifecycle: poll backoff and give-up time.
LUMA_POLL_FIRST_SECONDS = env_int("LUMA_POLL_FIRST_SECONDS", 30)
LUMA_POLL_MAX_INTERVAL_SECONDS = env_int("LUMA_POLL_MAX_INTERVAL_SECONDS", 300)
LUMA_MAX_WAIT_SECONDS = env_int("LUMA_MAX_WAIT_SECONDS", 60 * 60)
LUMA_SUBMIT_MAX_ATTEMPTS = env_int("LUMA_SUBMIT_MAX_ATTEMPTS", 6)
LUMA_CALLBACK_MAX_AGE_SECONDS = env_int("LUMA_CALLBACK_MAX_AGE_SECONDS", 300)
LUMA_MAX_RESULT_BYTES = env_int("LUMA_MAX_RESULT_BYTES", 1024 * 1024 * 1024)
# The provider's limits, kept by every worker together (modify/limiter.py; Redis with REDIS_URL, else
# the database): new generate calls per window per API key (0: no limit), each slot held a margin longer
# than the window so that calls whose trip takes different times still arrive within the limit; uploads
# at once per key (0: no limit); record-info calls per second per key in the sweep's poll batch.
LUMA_RATE_LIMIT = env_int("LUMA_RATE_LIMIT", 20)
LUMA_RATE_WINDOW_SECONDS = float(os.environ.get("LUMA_RATE_WINDOW_SECONDS", "10"))
LUMA_RATE_MARGIN_SECONDS = float(os.environ.get("LUMA_RATE_MARGIN_SECONDS", "1"))
LUMA_UPLOAD_CONCURRENCY = env_int("LUMA_UPLOAD_CONCURRENCY", 4)
LUMA_UPLOAD_REUSE_SECONDS = env_int("LUMA_UPLOAD_REUSE_SECONDS", 24 * 3600)
LUMA_RECORD_INFO_PER_SECOND = float(os.environ.get("LUMA_RECORD_INFO_PER_SECOND", "5"))
# Encrypts ApiKey secrets at rest; derived from SECRET_KEY when unset. To rotate,
# list the new key first and the old after it, run `manage.py rotate_encryption_key`,
# then drop the old one: every listed key decrypts, the first encrypts.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", os.environ.get("FIELD_ENCRYPTION_KEY", ""))

# --- The team ----------------------------------------------------------------------
# What one task costs in provider credits (kie.ai does not report it per task).
LUMA_CREDITS_PER_TASK = env_int("LUMA_CREDITS_PER_TASK", 10)
# A key with fewer credits left is flagged to staff; with fewer than one task's worth it is not used.
LUMA_LOW_CREDITS = env_int("LUMA_LOW_CREDITS", 100)
LUMA_CREDITS_REFRESH_MINUTES = env_int("LUMA_CREDITS_REFRESH_MINUTES", 15)
INVITATION_DAYS = env_int("INVITATION_DAYS", 7)
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "lumaweb@localhost")
# Login throttling (django-axes): per username and per address, for an hour.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_HOURS", 1)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# --- The sandbox -----------------------------------------------------------------
# On by default only while no real provider is configured (neither a key nor a
# host: keys may live in the admin alone); never mounted otherwise.
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", not (LUMA_API_KEY or LUMA_API_BASE))
SANDBOX_API_KEYS = env_list("SANDBOX_API_KEYS", "sandbox-key")
SANDBOX_INITIAL_CREDITS = env_int("SANDBOX_INITIAL_CREDITS", 1000)
SANDBOX_TASK_COST = env_int("SANDBOX_TASK_COST", 10)
SANDBOX_RESULT_TTL = env_int("SANDBOX_RESULT_TTL", 14 * 24 * 3600)
SANDBOX_UPLOAD_TTL = env_int("SANDBOX_UPLOAD_TTL", 3 * 24 * 3600)
SANDBOX_MIN_SECONDS = float(os.environ.get("SANDBOX_MIN_SECONDS", "0"))
SANDBOX_WEBHOOK_HMAC_KEY = os.environ.get("SANDBOX_WEBHOOK_HMAC_KEY", "").strip()
SANDBOX_FAULTS = os.environ.get("SANDBOX_FAULTS", "").strip()
# As kie.ai: at most this many generate calls per window per account, else code 429 (0: no limit).
SANDBOX_RATE_LIMIT = env_int("SANDBOX_RATE_LIMIT", 20)
SANDBOX_RATE_WINDOW_SECONDS = float(os.environ.get("SANDBOX_RATE_WINDOW_SECONDS", "10"))
