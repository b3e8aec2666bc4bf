from collections.abc import Mapping, Sequence
from typing import Any

from django.core.management.base import CommandParser

from common.demo import DemoUser, int_in_range


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--points", type=int, default=500, help="each user's points (default 500)")


def seed(*, options: Mapping[str, Any], tag: str, users: Sequence[DemoUser]) -> dict[str, Any]:
    points = int_in_range(options["points"], name="--points", low=0)
    return {"points": [{"user_id": user.id, "points": points, "tag": tag} for user in users]}
