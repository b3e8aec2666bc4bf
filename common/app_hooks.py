"""What the installed apps provide by convention, the way Django finds each app's admin.py.

An app contributes to a cross-cutting concern by having a module of an agreed name (participant.py, its
saga step; invariants.py, its checks of docs/design.md §5; demo.py, its demo data). The callers find
those modules here, in INSTALLED_APPS order, so that adding an app is the only change they need.
"""

from collections.abc import Callable
from functools import cache
from importlib import import_module
from types import ModuleType
from typing import Any, TypeVar

from django.apps import AppConfig, apps
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import module_has_submodule

F = TypeVar("F", bound=Callable)
_per_installed_apps: list[Any] = []


def per_installed_apps(function: F) -> F:
    """functools.cache for what is read from the installed apps: worked out once, and again when a test
    changes INSTALLED_APPS (what is built once at start from these, the route table's receivers and
    Celery's queues, is not built again)."""
    cached = cache(function)
    _per_installed_apps.append(cached)
    return cached


@receiver(setting_changed)
def _forget_what_the_apps_said(*, setting: str, **kwargs: Any) -> None:
    if setting == "INSTALLED_APPS":
        for cached in _per_installed_apps:
            cached.cache_clear()


@per_installed_apps
def app_modules(submodule: str) -> tuple[tuple[AppConfig, ModuleType], ...]:
    """(app config, module) for every installed app that has `<app>.<submodule>`."""
    found = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, submodule):
            found.append((config, import_module(f"{config.name}.{submodule}")))
    return tuple(found)
