"""The base of every listener task: it closes its outbox row.

On success the row is marked handled, so the relay stops sending it. A retry records the error and
leaves the row to the task's own backoff. A final failure parks the row: an operator sees it in admin
and can send it again; nothing is dropped in silence.
"""

from typing import Any

from celery import Task

from eventbus.outbox import outbox_mark_failed, outbox_mark_handled


def _envelope_of(args: tuple, kwargs: dict) -> dict[str, Any] | None:
    envelope = args[0] if args else kwargs.get("envelope")
    return envelope if isinstance(envelope, dict) and "event_id" in envelope else None


class ListenerTask(Task):
    def __call__(self, *args, **kwargs):
        result = super().__call__(*args, **kwargs)
        envelope = _envelope_of(args, kwargs)
        if envelope is not None:
            outbox_mark_handled(event_id=envelope["event_id"], listener=self.name)
        return result

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        self._record_failure(exc, args, kwargs, park=False)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        self._record_failure(exc, args, kwargs, park=True)

    def _record_failure(self, exc: BaseException, args: tuple, kwargs: dict, *, park: bool) -> None:
        envelope = _envelope_of(args, kwargs)
        if envelope is not None:
            outbox_mark_failed(
                event_id=envelope["event_id"], listener=self.name, error=f"{type(exc).__name__}: {exc}", park=park
            )
