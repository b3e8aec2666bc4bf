from django.apps import AppConfig


class DataplatformConfig(AppConfig):
    name = "apps.dataplatform"
    label = "dataplatform"
    verbose_name = "Data platform delivery"
    queue_group = "remote"  # calls the data platform (common.queues)
