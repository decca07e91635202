"""Kills a retl run at a named pause point (src/testpoint.h), for the crash
tests: test_sync.py::test_crash_safety_sigkill (file destination) and
test_crash_hubspot.py.

With RETL_TEST_PAUSE_AT=<point>:<n>, retl stops itself (SIGSTOP) the n-th
time it reaches <point>, after writing "retl: paused at <point>" to stderr.
run_and_kill_at() starts the run, waits until the process is stopped there
(its /proc state is T, and the line is on its stderr), checks it is alive
and stopped, and SIGKILLs it: the kill lands exactly at the point, on the
side of the commit the point names, and never after the run ended.
"""

import os
import re
import signal
import subprocess
import tempfile

from waiting import wait_for

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# how long a loaded machine may take to reach a point; only stops a hang
DEADLINE = 120


def source_points():
    """Every point name the sources pass to retl_testpoint()."""
    names = set()
    src = os.path.join(REPO_DIR, "src")
    for f in sorted(os.listdir(src)):
        if f.endswith(".c") and f != "testpoint.c":
            with open(os.path.join(src, f), encoding="utf-8") as fh:
                names |= set(re.findall(r'retl_testpoint\("([^"]+)"\)',
                                        fh.read()))
    return names


def proc_state(pid):
    """The state letter of /proc/<pid>/stat (R, S, T, Z, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (in parentheses) may hold spaces: split after it
    return stat.rsplit(")", 1)[1].split()[0]


def start_paused(argv, point, n, env=None, stderr=None):
    """Starts argv with RETL_TEST_PAUSE_AT=point:n and waits until it is
    stopped there: the Popen.  stderr: a file (opened for reading and
    writing) that gets the run's stderr.  Fails (AssertionError) when the
    run ended without reaching the point."""
    full_env = dict(os.environ, **(env or {}))
    full_env["RETL_TEST_PAUSE_AT"] = f"{point}:{n}"
    proc = subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        # stopped at the point, or ended without reaching it (checked next)
        wait_for(lambda: proc.poll() is not None or proc_state(proc.pid) == "T",
                 DEADLINE, f"the run to stop at {point}:{n}", interval=0.005)
        alive = proc.poll() is None
        state = proc_state(proc.pid) if alive else None
        text = ""
        if stderr is not None:
            stderr.seek(0)
            text = stderr.read().decode("utf-8", "replace")
        assert alive, (f"the run ended (exit {proc.returncode}) without "
                       f"reaching {point}:{n}: {text[-2000:]}")
        assert state == "T", f"not stopped at {point}:{n} (state {state})"
        if stderr is not None:
            assert f"retl: paused at {point}\n" in text, text[-2000:]
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    return proc


def run_and_kill_at(argv, point, n, env=None):
    """Runs argv until it stopped at the n-th `point`, and SIGKILLs it
    there, alive and stopped."""
    with tempfile.TemporaryFile() as err:
        proc = start_paused(argv, point, n, env=env, stderr=err)
        try:
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.returncode
