"""What the installed apps provide by convention, the way Django finds each app's admin.py.

An app contributes to a cross-cutting concern by having a module of an agreed name (participant.py, its
saga step; invariants.py, its checks of docs/design.md §5; demo.py, its demo data). The callers find
those modules here, in INSTALLED_APPS order, so that adding an app is the only change they need.
"""

from functools import cache
from importlib import import_module
from types import ModuleType

from django.apps import AppConfig, apps
from django.utils.module_loading import module_has_submodule


@cache
def app_modules(submodule: str) -> tuple[tuple[AppConfig, ModuleType], ...]:
    """(app config, module) for every installed app that has `<app>.<submodule>`."""
    found = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, submodule):
            found.append((config, import_module(f"{config.name}.{submodule}")))
    return tuple(found)
