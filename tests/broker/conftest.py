import pytest
from django.conf import settings

from common.broker_options import is_amqp

on_rabbitmq = pytest.mark.skipif(
    not is_amqp(settings.CELERY_BROKER_URL),
    reason="needs the RabbitMQ broker (TEST_BROKER_KIND=amqp; `make test` runs it)",
)
