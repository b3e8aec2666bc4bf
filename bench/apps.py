from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by config.settings.bench: the no-op task and the counters of the benchmark."""

    name = "bench"
    label = "bench"

    def ready(self) -> None:
        from bench import instrumentation

        instrumentation.install()
