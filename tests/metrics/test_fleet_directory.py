"""The chaos run's and the benchmark's fleet (chaos.processes.Fleet) writes its metrics to a directory of its
own, empty when the fleet starts, given to every process it starts and removed when it stops."""

import sys

from chaos.environment import RunEnvironment
from chaos.processes import Fleet, Role


def test_every_process_of_a_fleet_gets_the_fleets_own_metrics_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "the-test-runs"))  # not inherited by the fleet
    fleet = Fleet(RunEnvironment(db_name="metrics_fleet_test", log_dir=tmp_path / "logs"))
    directory = fleet.metrics_dir
    assert directory.is_dir() and not any(directory.iterdir())
    fleet.roles["probe"] = Role(
        name="probe",
        command=[sys.executable, "-c", "import os; print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"],
        application_name="metrics-fleet-test",
    )
    (directory / "counter_1.db").write_bytes(b"")  # what a process of the fleet writes

    child = fleet.start("probe")
    child.process.wait(timeout=30)
    fleet.stop_all(grace=5)

    assert child.logged_since_start().strip() == str(directory)
    assert not directory.exists()
