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
    "django.contrib.auth.backends.ModelBackend",
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
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
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
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "lumaweb"),
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 600),
    "retry": env_int("Q_TIMEOUT", 600) + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "poll": 0.2,
    "label": "Task queue",
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
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
# Behind a proxy that terminates HTTPS and sets X-Forwarded-Proto: requests count as
# secure (CSRF origin checks, absolute URLs) and cookies are sent over HTTPS only.
BEHIND_HTTPS_PROXY = env_bool("BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", BEHIND_HTTPS_PROXY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

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
