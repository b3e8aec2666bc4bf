"""The short form of the chaos run, as CI runs it, on each broker: 100 orders against the API on gunicorn and the
Procfile's worker fleet while a prefork pool process is killed, Redis is flushed, the workers' database
connections are cut and the remote calls' threads worker crashes and is restarted. Every order must
settle, and every invariant of docs/design.md §5 must hold. On RabbitMQ (`--broker amqp`) the broker is
also stopped and started again, and one of the saga's queues purged.

It runs `python -m chaos --quick` as its own process tree, on the database and Redis db the test settings
name (CHAOS_DATABASE_NAME, CHAOS_REDIS_URL: TEST_CHAOS_DATABASE_NAME, TEST_CHAOS_REDIS_URL) and on any
free port, so that two checkouts' test runs can go on at once. Two runs on the same database or Redis db
never overlap: the second waits for the first's lock."""

import json
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from chaos import rabbitmq

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
LOCK_WAIT = 60  # of TIMEOUT, at most this long behind another chaos or bench run
STOP_GRACE = 60  # a run interrupted by SIGTERM stops its fleet (servers, workers, beat) in this time


def run_chaos(command: list[str]) -> subprocess.CompletedProcess:
    """Run the chaos command; past TIMEOUT, interrupt it with SIGTERM so that it stops its fleet, which
    lives in process groups of its own and would outlive a SIGKILL, and fail."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        raise AssertionError(f"the chaos run took over {TIMEOUT} s:\n{stdout[-6000:]}\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def chaos_summary(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith('{"chaos_summary": true')]
    assert lines, f"no summary line in the output:\n{stdout[-4000:]}"
    return json.loads(lines[-1])


def quick_chaos_command(*, broker: str) -> list[str]:
    return [
        *(sys.executable, "-m", "chaos", "--quick", "--lock-wait", str(LOCK_WAIT), "--broker", broker),
        *("--db-name", settings.CHAOS_DATABASE_NAME, "--redis-url", settings.CHAOS_REDIS_URL, "--port", "free"),
    ]


def test_the_quick_chaos_run_ends_with_no_stuck_order_and_no_violation():
    # given the whole system on a production-style server and worker fleet, under load and faults
    command = quick_chaos_command(broker="redis")

    # when the quick chaos run places its orders, injects its faults and waits for the saga to settle
    run = run_chaos(command)

    # then it exits cleanly with every order settled and every invariant holding
    output = f"{run.stdout[-6000:]}\n--- stderr ---\n{run.stderr[-3000:]}"
    assert run.returncode == 0, output
    summary = chaos_summary(run.stdout)
    assert summary["ok"] is True, output
    assert summary["stuck"] == 0, output
    assert summary["violations"] == 0, output
    assert summary["server_errors"] == 0, output
    # and the run was a real one: orders went both ways, and each fault was injected once
    assert summary["completed"] > 0, output
    assert summary["failed"] > 0, output
    assert summary["completed"] + summary["failed"] + summary["canceled"] == summary["orders"] > 0, output
    # and customers cancelled some orders meanwhile, each cancel repeated with its Idempotency-Key
    assert summary["cancel_answers"].get("202", 0) > 0, output
    assert summary["cancel_replays_wrong"] == [], output
    assert summary["faults"] == {"crash": 1, "cut": 1, "flush": 1, "kill": 1}, output


def test_the_quick_chaos_run_on_rabbitmq_survives_its_restart_and_a_purged_queue():
    # given the same fleet with its messages on RabbitMQ (a vhost of the run's own), under the same faults
    # and the broker's own: RabbitMQ stopped and started again, one of the saga's queues purged
    command = quick_chaos_command(broker="amqp")

    # when the quick chaos run places its orders, injects its faults and waits for the saga to settle
    run = run_chaos(command)

    # then every order settled and every invariant holds: the relay sent again what the broker lost
    output = f"{run.stdout[-6000:]}\n--- stderr ---\n{run.stderr[-3000:]}"
    assert run.returncode == 0, output
    summary = chaos_summary(run.stdout)
    assert summary["broker"] == "amqp", output
    assert (summary["ok"], summary["stuck"], summary["violations"], summary["monitor_findings"]) == (True, 0, 0, []), (
        output
    )
    assert summary["server_errors"] == 0, output
    assert summary["completed"] > 0 and summary["failed"] > 0, output
    assert summary["completed"] + summary["failed"] + summary["canceled"] == summary["orders"] > 0, output
    assert summary["faults"] == {"crash": 1, "cut": 1, "flush": 1, "kill": 1, "purge": 1, "restart": 1}, output
    # and the purge lost messages the relay had to send again
    purged = re.search(r"purge_queue \S+ with (\d+) messages waiting", run.stdout)
    assert purged and int(purged.group(1)) > 0, output
    # and RabbitMQ runs again, for whatever comes next on the machine
    assert rabbitmq.running()
