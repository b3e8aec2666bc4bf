from django.db import migrations, models


class Migration(migrations.Migration):
    """A nullable column without a default: PostgreSQL adds it without rewriting the table or holding its
    lock, and nodes still on the old code keep inserting orders (NULL: Order.taking_part)."""

    dependencies = [
        ("orders", "0002_order_canceled"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="participants",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
