"""Django settings, derived from the validated DoraConfig (see conf.py) and nothing else.

Production defaults are the safe ones: DEBUG off, sessions in the database, security headers on,
mail to the console unless a relay is configured. Only the config file changes them.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from iact.dora import conf

CONFIG = conf.load()
BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = CONFIG.secret_key
# The log console (iact.dora.logs): its read-only account, and the cluster and CA of `cassandra`.
IACT_LOGS = CONFIG.logs
IACT_CASSANDRA = CONFIG.cassandra
DEBUG = CONFIG.debug
ALLOWED_HOSTS = list(CONFIG.allowed_hosts)
CSRF_TRUSTED_ORIGINS = list(CONFIG.csrf_trusted_origins)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "iact.dora.apps.DoraConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Right after authentication (it reads the user) and before anything that may refuse the
    # request, so a refusal too carries its X-Request-ID and its log record the id.
    "iact.applog.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "iact.dora.middleware.AdminNetworkMiddleware",
]

ROOT_URLCONF = "iact.dora.urls"
WSGI_APPLICATION = "iact.dora.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_db = CONFIG.database
if _db.engine == "mysql":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _db.name,
            "USER": _db.user,
            "PASSWORD": _db.password,
            "HOST": _db.socket or _db.host,
            "PORT": "" if _db.socket else str(_db.port),
            "CONN_MAX_AGE": 60,
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _db.name}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions live in the database: no Redis, no memcached, and a restart logs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CONFIG.https
CSRF_COOKIE_SECURE = CONFIG.https
if CONFIG.https:
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": CONFIG.password_min_length},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "dora_cache"}
        if CONFIG.cache == "db"
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "dora"}
    )
}

_em = CONFIG.email
if _em.backend == "smtp":
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST, EMAIL_PORT, EMAIL_USE_TLS = _em.host, _em.port, _em.use_tls
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _em.user, _em.password
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = SERVER_EMAIL = _em.sender

LANGUAGE_CODE = "en-us"
TIME_ZONE = CONFIG.time_zone
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = CONFIG.static_root or None
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/api/dora/dashboard/"

DORA_PRODUCTION_ENVIRONMENTS = CONFIG.production_environments
DORA_BENCHMARK = CONFIG.benchmark
DORA_INCIDENT_ATTRIBUTION = CONFIG.incident_attribution
DORA_GITHUB_WEBHOOK_SECRET = CONFIG.github_webhook_secret
DORA_HEALTH = CONFIG.health
DORA_JOBS = CONFIG.jobs

# Hostile clients (see middleware.py, throttle.py): bodies are refused above the limit with a 413
# before Django reads them; tokens and logins are counted in the database (no cache server).
DATA_UPLOAD_MAX_MEMORY_SIZE = DORA_API_MAX_BODY_BYTES = CONFIG.api.max_body_bytes
DORA_API_RATE_LIMIT = CONFIG.api.rate_limit
DORA_API_RATE_WINDOW = CONFIG.api.rate_window_seconds
DORA_LOGIN_MAX_FAILURES = CONFIG.login.max_failures
DORA_LOGIN_WINDOW = CONFIG.login.window_seconds
DORA_LOGIN_LOCKOUT = CONFIG.login.lockout_seconds
DORA_ADMIN_NETWORKS = CONFIG.admin_networks
DORA_TRUSTED_PROXIES = CONFIG.trusted_proxies

# The server (its unit sets IACT_DORA_SERVER=1) logs to its file and ships to Cassandra. One-off
# management commands, often run by root, log to the console only: no root-owned log or spool
# files for the service user to trip over, no wait on Cassandra at exit.
DORA_SERVER_PROCESS = os.environ.get("IACT_DORA_SERVER") == "1"
_handlers: dict[str, dict] = {"console": {"class": "logging.StreamHandler", "formatter": "plain"}}
if CONFIG.log_file and DORA_SERVER_PROCESS:
    _handlers["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": CONFIG.log_file,
        "formatter": "json",
        "filters": ["request_context"],
    }
if CONFIG.cassandra.hosts and DORA_SERVER_PROCESS:
    # The dashboard ships its own logs the way it tells users to (README: ship your app's logs).
    _handlers["cassandra"] = {
        "()": "iact.applog.CassandraHandler",
        "app": "dora",
        "hosts": CONFIG.cassandra.hosts,
        "username": CONFIG.cassandra.username or None,
        "password": CONFIG.cassandra.password or None,
        "spool_path": CONFIG.cassandra.spool_path,
        "ca_file": CONFIG.cassandra.ca_file or None,
        "filters": ["request_context"],
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "iact.applog.RequestContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "iact.applog.JsonFormatter", "app": "dora"},
    },
    "handlers": _handlers,
    "root": {"handlers": list(_handlers), "level": "INFO"},
}

# DORA events (a failed production deployment, an incident opened) through the alerter's channels;
# a one-off command sends to Slack and e-mail but leaves the service's alert log alone, as its logs do.
DORA_ALERTS = CONFIG.alerts if DORA_SERVER_PROCESS else replace(CONFIG.alerts, log_path=None)
