"""Customers' API keys are stored as digests: `Authorization: Token <key>` works, and nobody who reads the
database or the admin can read a key (or mint one in admin to act as a customer)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from knox.crypto import hash_token
from knox.models import AuthToken
from rest_framework.test import APIClient

from apps.accounts.services import api_key_issue, api_keys_issue_bulk


def calls_with(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/products").status_code


@pytest.mark.django_db
def test_an_issued_key_works_and_only_its_digest_is_stored(make_user):
    user = make_user()

    key = api_key_issue(user=user)

    assert calls_with(key) == 200
    stored = AuthToken.objects.get(user=user)
    assert stored.digest == hash_token(key) != key
    assert key not in {stored.digest, stored.token_key} and len(stored.token_key) < len(key)
    assert calls_with(key[:-1] + ("0" if key[-1] != "0" else "1")) == 401


@pytest.mark.django_db
def test_keys_issued_in_bulk_each_work_for_their_own_user(make_user):
    users = [make_user() for _ in range(3)]

    keys = api_keys_issue_bulk(users=users)

    assert len(set(keys)) == 3
    for user, key in zip(users, keys, strict=True):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get(f"/api/v1/users/{user.pk}/balance").status_code == 200


@pytest.mark.django_db
def test_the_admin_lists_keys_without_them_and_cannot_mint_one(client, make_user):
    operator = get_user_model().objects.create_superuser(username="operator", email="", password=None)
    client.force_login(operator)
    customer = make_user(username="customer-with-a-key")
    key = api_key_issue(user=customer)
    stored = AuthToken.objects.get(user=customer)

    listed = client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    page = client.get(reverse("admin:accounts_apikey_change", args=[stored.pk])).content.decode()

    assert "customer-with-a-key" in listed
    for shown in (listed, page):
        assert key not in shown and key[:15] not in shown
    assert client.get(reverse("admin:accounts_apikey_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_keys_issued_before_digests_keep_working_and_the_clear_text_table_is_dropped(make_user):
    # given a database from before: DRF's clear-text token table holding a customer's key
    user = make_user()
    old_key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
    call_command("migrate", "accounts", "zero", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL, user_id bigint)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [old_key, user.pk])

    # when the migration runs
    call_command("migrate", "accounts", verbosity=0)

    # then the old key works, and no clear-text key is left in the database
    assert calls_with(old_key) == 200
    with connection.cursor() as cursor:
        assert "authtoken_token" not in connection.introspection.table_names(cursor)
