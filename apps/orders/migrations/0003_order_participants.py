from django.db import migrations, models

# Orders placed before participants declared themselves ran the three steps of that time: balance and
# stock always, the coupon step when the order had a coupon.
BACKFILL = """
UPDATE orders_order SET participants = CASE
    WHEN user_coupon_id IS NULL THEN '["balance", "stock"]'::jsonb
    ELSE '["balance", "coupon", "stock"]'::jsonb
END
"""


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_order_canceled"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="participants",
            field=models.JSONField(default=list),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
