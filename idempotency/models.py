from django.conf import settings
from django.db import models


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key and the answer its first request got. Written in the same transaction
    as that request's effect: an order never exists without its key, nor a key without its order."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the method, the path and the body as parsed JSON: what "the same request" means.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    # The answer's body as it was sent, byte for byte (jsonb would reorder its keys).
    response_body = models.TextField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")]

    def __str__(self) -> str:
        return f"{self.key} (user {self.user_id}): {self.status_code}"
