"""bench.cpu: CPU seconds by part of the system, read from /proc."""

import subprocess
import sys
import time

from bench.cpu import cpu_seconds_by_part
from chaos.processes import group_members

BURN_ONLY = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
BURN = BURN_ONLY + "\ntime.sleep(5)"
RUNS_A_CHILD = f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {BURN_ONLY!r}])\ntime.sleep(5)"


def test_a_process_group_is_charged_with_the_cpu_its_processes_spent():
    # given a child in a session of its own that burns 0.3 s of CPU, then waits
    child = subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True)
    try:
        before = cpu_seconds_by_part({child.pid: "burner"}).get("burner", 0.0)
        while cpu_seconds_by_part({child.pid: "burner"}).get("burner", 0.0) < 0.29:
            assert child.poll() is None, "the child ended before burning its CPU"

        # when / then: the part named after its group carries the CPU, up to the clock's tick
        after = cpu_seconds_by_part({child.pid: "burner"})
        assert before < 0.29 <= after["burner"] < 1.0
        # and the servers and this process are parts of their own
        assert {"postgres", "redis", "load generator"} <= set(after)
    finally:
        child.kill()
        child.wait()


def test_the_cpu_of_a_child_that_ended_stays_with_its_parents_part():
    # given a process that runs a burning child to its end, reaps it, then waits (as the postmaster does
    # with a closed connection's backend)
    parent = subprocess.Popen([sys.executable, "-c", RUNS_A_CHILD], start_new_session=True)
    try:
        # when the child has ended (the parent is alone in its group again, having spent its child's CPU)
        give_up = time.monotonic() + 10
        while len(group_members(parent.pid)) != 1 or cpu_seconds_by_part({parent.pid: "parent"})["parent"] < 0.29:
            assert parent.poll() is None and time.monotonic() < give_up, "the child never ended"

        # then its CPU still counts for the parent's part
        assert 0.29 <= cpu_seconds_by_part({parent.pid: "parent"})["parent"] < 1.0
    finally:
        parent.kill()
        parent.wait()
