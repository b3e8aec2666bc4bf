"""Database helpers the ORM has no single statement for."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection, models
from django.utils import timezone


def insert_or_skip(instance: models.Model, *, unique: str | Sequence[str]) -> bool:
    """INSERT the instance unless a row with its values of the unique field `unique` (or of the fields of
    a unique constraint, given as a sequence) exists; True if it was inserted (the instance then has its
    primary key and counts as saved).

    One statement, INSERT ... ON CONFLICT DO NOTHING: where get_or_create reads, then inserts inside a
    savepoint (or a transaction of its own) and catches IntegrityError, this costs one round trip and is
    just as safe under races: a concurrent insert of the same value waits for the first one's
    transaction, then skips. Field defaults and auto_now(_add) apply as in save(); it writes through the
    default database and sends no model signals, as bulk_create does not."""
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if field is not meta.auto_field]
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    quote = connection.ops.quote_name
    returning = f" RETURNING {quote(meta.pk.column)}" if meta.auto_field else ""
    unique_fields = [unique] if isinstance(unique, str) else unique
    conflict = ", ".join(quote(meta.get_field(name).column) for name in unique_fields)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({conflict}) DO NOTHING{returning}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if cursor.rowcount != 1:
            return False
        if meta.auto_field:
            instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def update_each(model: type[models.Model], *, key: str, field: str, values: Mapping[Any, int]) -> None:
    """Set `field` of each row whose `key` is in `values` to that row's value, in one UPDATE ... FROM
    unnest (the ORM has none); a field with auto_now is set as save() would set it. The values are integers
    (balances, stock counts)."""
    if not values:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    key_column, value_column = quote(meta.get_field(key).column), quote(meta.get_field(field).column)
    assignments = [f"{value_column} = new.value"]
    parameters: list[Any] = []
    for stamped in (f for f in meta.concrete_fields if getattr(f, "auto_now", False)):
        assignments.append(f"{quote(stamped.column)} = %s")
        parameters.append(timezone.now())
    sql = (
        f"UPDATE {quote(meta.db_table)} AS target SET {', '.join(assignments)}"
        " FROM unnest(%s::bigint[], %s::bigint[]) AS new(key, value)"
        f" WHERE target.{key_column} = new.key"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*parameters, list(values), list(values.values())])


def locked_values(model: type[models.Model], *, key: str, field: str, keys: Iterable[Any]) -> dict[Any, Any]:
    """`field` of each row whose `key` is one of `keys`, the rows locked FOR UPDATE in one statement, in
    order of key, so that two transactions locking overlapping rows never deadlock."""
    rows = model.objects.select_for_update().filter(**{f"{key}__in": set(keys)}).order_by(key)
    return dict(rows.values_list(key, field))
