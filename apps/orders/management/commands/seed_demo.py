"""`manage.py seed_demo`: a fresh demo data set, printed as one JSON object (docs/api.md, Commands).

The command creates the staff user and the demo users; every other part of the data set, and its options,
comes from the apps' `demo.py` hooks (common/demo.py), in INSTALLED_APPS order. The users stay here
because they are every hook's input rather than one app's contribution: were they a hook's output, the
others would silently depend on that app coming first in INSTALLED_APPS.

Every run tags its objects with a new random run tag, so it can run any number of times against one
database. Everything is created in one transaction: a refused argument or service leaves nothing behind.
"""

import json
import secrets
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction

from apps.accounts.services import api_key_issue
from common.demo import DemoUser, demo_hooks, int_in_range
from common.errors import ApplicationError


def new_run_tag() -> str:
    """A short random tag that makes this run's names unique."""
    return secrets.token_hex(4)


def _user_with_token(*, username: str) -> dict[str, Any]:
    user = get_user_model().objects.create_user(username=username)
    return {"id": user.pk, "username": user.username, "token": api_key_issue(user=user)}


def _staff_with_token(*, username: str) -> dict[str, Any]:
    """A superuser with a token for the API and a password for /admin/ (the demo is local only)."""
    password = secrets.token_urlsafe(12)
    user = get_user_model().objects.create_superuser(username=username, email="", password=password)
    return {
        "id": user.pk,
        "username": user.username,
        "token": api_key_issue(user=user),
        "password": password,
    }


@transaction.atomic
def seed_demo(options: Mapping[str, Any], *, tag: str) -> dict[str, Any]:
    """Create the demo data set and describe it in the shape docs/api.md gives for `seed_demo`."""
    user_count = int_in_range(options["users"], name="--users", low=0)
    data: dict[str, Any] = {
        "staff": _staff_with_token(username=f"demo-{tag}-staff"),
        "users": [_user_with_token(username=f"demo-{tag}-user{number}") for number in range(1, user_count + 1)],
    }
    users = tuple(DemoUser(id=user["id"], username=user["username"]) for user in data["users"])
    for hook in demo_hooks():
        part = hook.seed(options=options, tag=tag, users=users)
        if taken := data.keys() & part.keys():
            raise ImproperlyConfigured(f"{hook.__name__} prints keys another part prints already: {sorted(taken)}")
        data.update(part)
    return data


class Command(BaseCommand):
    help = (
        "Create a staff user (token and /admin/ password), demo users with API tokens and every installed "
        "app's demo data (the options after --users are the apps'), and print them as one JSON object on stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=5, help="how many users (default 5)")
        for hook in demo_hooks():
            hook.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = seed_demo(options, tag=new_run_tag())
        except ApplicationError as error:
            raise CommandError(error.message) from error
        except IntegrityError as error:  # a run tag already taken: astronomically unlikely
            raise CommandError(f"Could not create the demo data, nothing was saved; run it again. ({error})") from error
        self.stdout.write(json.dumps(data))
