"""Keys issued before keys were stored as digests (DRF's authtoken table, in clear) keep working: each is
copied as a knox digest, then the clear-text table is dropped."""

from django.db import migrations
from knox.crypto import hash_token
from knox.settings import CONSTANTS

CLEAR_TEXT_TABLE = "authtoken_token"


def keys_to_digests(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if CLEAR_TEXT_TABLE not in connection.introspection.table_names(cursor):
            return
        cursor.execute(f"SELECT key, user_id FROM {CLEAR_TEXT_TABLE}")
        rows = cursor.fetchall()
    AuthToken = apps.get_model("knox", "AuthToken")
    AuthToken.objects.bulk_create(
        AuthToken(digest=hash_token(key), token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id, expiry=None)
        for key, user_id in rows
    )
    schema_editor.execute(f"DROP TABLE {CLEAR_TEXT_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("knox", "0009_extend_authtoken_field")]

    operations = [migrations.RunPython(keys_to_digests, migrations.RunPython.noop)]
