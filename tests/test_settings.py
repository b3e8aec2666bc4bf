"""Production settings refuse to start without their secrets, or with DEBUG on (STYLE.md, Settings)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

LONG_SECRET = "a-production-secret-key-that-is-long-enough-0123456789"
PRODUCTION = {
    "DJANGO_SECRET_KEY": LONG_SECRET,
    "DATABASE_URL": "postgres://shop:secret@db.internal:5432/shop",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "DJANGO_ALLOWED_HOSTS": "shop.example.com,api.example.com",
}
# Read by the settings; each test decides which of them the process sees.
SETTINGS_VARIABLES = ("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOWED_HOSTS")


def start_production(**variables: str) -> subprocess.CompletedProcess:
    """Start Django with the production settings in a fresh process that sees only `variables`."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.production", **variables}
    script = (
        "import django; django.setup(); from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS)"
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_starts_with_a_long_secret_a_database_and_allowed_hosts():
    started = start_production(**PRODUCTION)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "False ['shop.example.com', 'api.example.com']"


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({**PRODUCTION, "DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({key: value for key, value in PRODUCTION.items() if key != "DJANGO_SECRET_KEY"}, "DJANGO_SECRET_KEY"),
        ({**PRODUCTION, "DJANGO_SECRET_KEY": "too-short"}, "DJANGO_SECRET_KEY"),
        ({**PRODUCTION, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG"),
        ({key: value for key, value in PRODUCTION.items() if key != "DATABASE_URL"}, "DATABASE_URL"),
        ({key: value for key, value in PRODUCTION.items() if key != "REDIS_URL"}, "REDIS_URL"),
        ({key: value for key, value in PRODUCTION.items() if key != "DJANGO_ALLOWED_HOSTS"}, "DJANGO_ALLOWED_HOSTS"),
    ],
    ids=["empty secret", "no secret", "short secret", "debug on", "no database", "no redis", "no allowed hosts"],
)
def test_production_refuses_to_start(variables, complaint):
    started = start_production(**variables)
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert complaint in started.stderr
