"""The processes an earlier run may have left: found by pid, stopped, their log's last lines for an error."""

from __future__ import annotations

from pathlib import Path

import psutil


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, to quote in an error."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def live_process(pid: int) -> psutil.Process | None:
    """The live, non-zombie process with this pid, or None."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def terminate(proc: psutil.Process, timeout: float) -> None:
    """SIGTERM, then SIGKILL after timeout, for a process that is not our child."""
    try:
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.NoSuchProcess:
        return
