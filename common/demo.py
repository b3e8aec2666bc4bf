"""Demo data, contributed by each app that has some in its `demo.py` (`manage.py seed_demo`).

The command creates a staff user and the demo users (each with an API key), then asks every app's
`demo.py`, in INSTALLED_APPS order, for the rest. A hook module defines two functions:

    def add_arguments(parser: CommandParser) -> None:
        parser.add_argument("--points", type=int, default=500, help="each user's points (default 500)")

    def seed(*, options: Mapping[str, Any], tag: str, users: Sequence[DemoUser]) -> dict[str, Any]:
        points = int_in_range(options["points"], name="--points", low=0)  # CommandError if refused
        ...create the app's demo objects through its services, naming them after `tag`...
        return {"points": [...]}  # the keys this app adds to the printed JSON, in the order printed

All hooks run in the command's one transaction: a CommandError or ApplicationError from any of them
leaves nothing behind. Validate the options before writing anything, with the helpers below.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, cast

from django.core.management.base import CommandError, CommandParser

from common.app_hooks import app_modules


@dataclass(frozen=True)
class DemoUser:
    """A demo user the command created, handed to every hook."""

    id: int
    username: str


class DemoHook(Protocol):
    """What an app's `demo.py` module provides."""

    __name__: str

    def add_arguments(self, parser: CommandParser) -> None: ...

    def seed(self, *, options: Mapping[str, Any], tag: str, users: Sequence[DemoUser]) -> dict[str, Any]: ...


def demo_hooks() -> tuple[DemoHook, ...]:
    """Every installed app's demo hook, in INSTALLED_APPS order (the order of the printed keys)."""
    return tuple(cast(DemoHook, module) for _, module in app_modules("demo"))


def int_in_range(value: Any, *, name: str, low: int, high: int | None = None) -> int:
    """`value` as given for the option `name`; CommandError unless it is a whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"{name} must be a whole number, not {value!r}.")
    if value < low:
        raise CommandError(f"{name} must be at least {low:,}, not {value:,}.")
    if high is not None and value > high:
        raise CommandError(f"{name} must be at most {high:,}, not {value:,}.")
    return value


def rate(value: Any, *, name: str, places: int) -> Decimal:
    """`value` as a rate from 0 to 1; CommandError unless it is one, with at most `places` decimal places."""
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise CommandError(f"{name} must be a number, not {value!r}.") from None
    if not parsed.is_finite() or not Decimal(0) <= parsed <= Decimal(1):
        raise CommandError(f"{name} must be between 0 and 1, not {value}.")
    if parsed != parsed.quantize(Decimal(1).scaleb(-places)):
        raise CommandError(f"{name} may have at most {places} decimal places, not {value}.")
    return parsed
