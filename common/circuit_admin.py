"""The circuit breakers in admin (common/circuit.py): the changelist of each app that calls a remote system
shows that system's breaker (its state, consecutive failures, when the next trial call may go, the last
error), and an operator who knows the partner is back may close it by hand, which admin's history keeps."""

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from redis.exceptions import RedisError

from common.circuit import CLOSED, OPEN, CircuitBreaker, CircuitSnapshot


def _at(moment) -> str:
    """To the second: a cool-off lasts seconds."""
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s")


def describe(snapshot: CircuitSnapshot) -> str:
    """What the breaker is doing, in a sentence for operators."""
    if not snapshot.reachable:
        return "Redis cannot be reached: the breaker lets every call through until it can."
    if snapshot.state == CLOSED:
        return f"Calls go through; {snapshot.failures} of {snapshot.threshold} consecutive failures before it opens."
    since = f"Opened at {_at(snapshot.opened_at)}" if snapshot.opened_at else "Open"
    if snapshot.state == OPEN:
        told = f"{since} after {snapshot.failures} consecutive failures; no call until {_at(snapshot.retry_at)}"
        return f"{told}, then one trial call. The tasks that need it wait their retry."
    trial = f" (under way until {_at(snapshot.trial_until)} at the latest)" if snapshot.trial_until else ""
    return (
        f"{since}; its cool-off is over and the next call is the trial{trial}: success closes it, failure reopens it."
    )


class CircuitBreakerAdminMixin:
    """For the admin of an app that calls `circuit_breaker`'s partner: its changelist shows the breaker
    (the app's templates/admin/<app>/<model>/change_list.html puts `circuit_breaker_panel` on the page),
    and operators with the model's change permission may close it."""

    circuit_breaker: CircuitBreaker

    def has_close_circuit_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_close_circuit"
        return [
            path("circuit-breaker/close/", self.admin_site.admin_view(self.close_circuit_view), name=name),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "circuit_breaker_panel": self._panel(request)}
        return super().changelist_view(request, extra_context)

    def close_circuit_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_close_circuit_permission(request):
            raise PermissionDenied
        breaker = self.circuit_breaker
        try:
            before = breaker.reset()
        except RedisError as error:
            self.message_user(request, f"Redis cannot be reached, nothing changed: {error}", messages.ERROR)
        else:
            LogEntry.objects.create(
                user_id=request.user.pk,
                content_type=ContentType.objects.get_for_model(self.model),
                object_repr=f"circuit breaker {breaker.name}",
                action_flag=CHANGE,
                change_message=(
                    f"Closed the circuit breaker of {breaker.label} by hand "
                    f"(it was {before.state}, {before.failures} consecutive failures)."
                ),
            )
            self.message_user(
                request, f"The circuit breaker of {breaker.label} is closed (it was {before.state}).", messages.SUCCESS
            )
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def _panel(self, request: HttpRequest) -> str:
        snapshot = self.circuit_breaker.snapshot()
        last_error = ""
        if snapshot.last_error:
            last_error = format_html(
                "<p>Last failure ({}): <code>{}</code></p>", _at(snapshot.last_failure_at), snapshot.last_error
            )
        close = ""
        closable = snapshot.reachable and (snapshot.state != CLOSED or snapshot.failures)
        if closable and self.has_close_circuit_permission(request):
            url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_close_circuit")
            close = format_html(
                '<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
                '<input type="submit" value="Close the breaker now"></form>',
                url,
                get_token(request),
            )
        note = "errornote" if snapshot.state != CLOSED or not snapshot.reachable else "help"
        return format_html(
            '<div class="module" id="circuit-breaker"><h2>Circuit breaker of {}: {}</h2><p class="{}">{}</p>{}{}</div>',
            snapshot.label,
            snapshot.state,
            note,
            describe(snapshot),
            last_error,
            close,
        )
