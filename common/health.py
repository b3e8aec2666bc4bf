"""Liveness and readiness (docs/api.md, "Operations"), open to the orchestrator's probes.

`/healthz` answers while the process serves: it touches nothing else, so a database outage does not get
every API process restarted. `/readyz` checks what a request needs, each within about a second
(common.redis.QUICK_TIMEOUT_SECONDS): the database, Redis (process hashes, locks, rank, rate limits) and
the broker; a failing check answers 503 and says why, so that a load balancer sends requests elsewhere
until it passes.
"""

from collections.abc import Callable

from celery import current_app
from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from kombu import Connection
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.openapi import NOT_ACCEPTABLE, errors
from common.redis import QUICK_TIMEOUT_SECONDS, quick_client
from eventbus.queue_depth import redis_broker

OK = "ok"


def _outcome(check: Callable[[], object]) -> str:
    try:
        check()
    except Exception as error:  # any failure is the answer, whatever raised it
        return f"{type(error).__name__}: {error}"[:300]
    return OK


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    quick_client(settings.REDIS_URL).ping()


def _broker() -> None:
    client = redis_broker()
    if client is not None:
        client.ping()
        return
    with Connection(current_app.conf.broker_url, connect_timeout=QUICK_TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, timeout=QUICK_TIMEOUT_SECONDS)


CHECKS = {"database": _database, "redis": _redis, "broker": _broker}
READINESS = inline_serializer(
    "Readiness",
    {
        "status": serializers.ChoiceField(choices=[OK, "unavailable"]),
        "checks": inline_serializer(
            "ReadinessChecks",
            {name: serializers.CharField(help_text='"ok", or why the check failed') for name in CHECKS},
        ),
    },
)


class OpenProbe(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []


class HealthzApi(OpenProbe):
    @extend_schema(
        operation_id="healthz",
        tags=["operations"],
        summary="Liveness: the process serves",
        auth=[],
        responses={
            200: inline_serializer("Health", {"status": serializers.ChoiceField(choices=[OK])}),
            **errors(NOT_ACCEPTABLE),
        },
    )
    def get(self, request):
        return Response({"status": OK})


class ReadyzApi(OpenProbe):
    @extend_schema(
        operation_id="readyz",
        tags=["operations"],
        summary="Readiness: the database, Redis and the broker answer",
        description="503 when a check fails; the failing check's value says why.",
        auth=[],
        responses={
            200: READINESS,
            503: READINESS,
            **errors(NOT_ACCEPTABLE),
        },
    )
    def get(self, request):
        checks = {name: _outcome(check) for name, check in CHECKS.items()}
        ready = all(outcome == OK for outcome in checks.values())
        return Response({"status": OK if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
