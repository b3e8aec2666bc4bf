from celery import shared_task


@shared_task(name="bench.noop")
def noop_task() -> None:
    """Does nothing: the machine's task ceiling is how many of these the fleet runs a second."""
