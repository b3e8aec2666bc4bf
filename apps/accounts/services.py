"""API keys: customers call the API with `Authorization: Token <key>`. The key is shown once, when it is
issued; the database keeps only its digest (django-rest-knox), so no one who reads the database or the
admin can act as a customer."""

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from knox.models import AuthToken, get_digest_token
from knox.settings import CONSTANTS


def api_key_issue(*, user: AbstractBaseUser) -> str:
    """A new API key for the user; returns the key itself, which is not stored anywhere."""
    _, key = AuthToken.objects.create(user=user, expiry=None)
    return key


def api_keys_issue_bulk(*, users: Sequence[AbstractBaseUser]) -> list[str]:
    """One new key per user, in one INSERT (for data sets of thousands of users); the keys in order."""
    digests_and_keys = [get_digest_token() for _ in users]
    AuthToken.objects.bulk_create(
        AuthToken(digest=digest, token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], user=user, expiry=None)
        for user, (digest, key) in zip(users, digests_and_keys, strict=True)
    )
    return [key for _, key in digests_and_keys]
