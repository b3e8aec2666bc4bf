"""bench.cpu: CPU seconds by part of the system, read from /proc."""

import subprocess
import sys

from bench.cpu import cpu_seconds_by_part

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(5)"


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
