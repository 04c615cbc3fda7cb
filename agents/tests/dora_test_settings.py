"""Django settings for the tests: the app's own settings, with the throwaway MariaDB server.

The socket path is filled in by the `django_db_modify_db_settings` fixture once the server runs.
"""

import pymysql

from iact.dora.settings import *  # noqa: F403

pymysql.install_as_MySQLdb()
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "dora",
        "USER": "root",
        "PASSWORD": "",
        "HOST": "",
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": "test_dora", "CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }
}
DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; production keeps PBKDF2
DORA_GITHUB_WEBHOOK_SECRET = "test-webhook-secret"
LOGGING = {"version": 1, "disable_existing_loggers": False}
