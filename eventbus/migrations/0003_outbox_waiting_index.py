from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    dependencies = [("eventbus", "0002_outboxmessage_start_mark")]

    operations = [
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(
                fields=["listener", "id"],
                condition=Q(handled_at__isnull=True, parked_at__isnull=True, started_at__isnull=True),
                name="outbox_waiting",
            ),
        ),
    ]
