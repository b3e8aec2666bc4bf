from .base import *  # noqa: F403
from .base import STORAGES, env

# DEBUG stays off by default so that every error is the API's JSON, as in production; `runserver
# --insecure` (Procfile) still serves the admin's static files.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-development-only-not-secret")
# Static files straight from the apps (no collectstatic step), still served by the application.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
