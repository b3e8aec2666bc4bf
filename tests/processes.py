"""Stopping a process a test started (a worker, gunicorn, beat) the way its operators would."""

import os
import signal
import subprocess
from contextlib import suppress


def stop(process: subprocess.Popen, *, timeout: float = 30.0, group: bool = False) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL if it lingers: its whole process group when `group` (a
    master and the children it started in a session of their own)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    if group:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    elif process.poll() is None:
        process.kill()
    process.wait(timeout=5)
