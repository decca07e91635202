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
import time

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


def run_and_kill_at(argv, point, n, env=None):
    """Runs argv with RETL_TEST_PAUSE_AT=point:n and SIGKILLs it once it
    stopped there.  Fails (AssertionError) when the run ended without
    reaching the point, or was not alive and stopped at the kill."""
    full_env = dict(os.environ, **(env or {}))
    full_env["RETL_TEST_PAUSE_AT"] = f"{point}:{n}"
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.time() + DEADLINE
            state = None
            while time.time() < deadline and proc.poll() is None:
                state = proc_state(proc.pid)
                if state == "T":
                    break
                time.sleep(0.005)
            alive = proc.poll() is None
            state = proc_state(proc.pid) if alive else None
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            assert alive, (f"the run ended (exit {proc.returncode}) without "
                           f"reaching {point}:{n}: {text[-2000:]}")
            assert state == "T", f"not stopped at {point}:{n} (state {state})"
            assert f"retl: paused at {point}\n" in text, text[-2000:]
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.returncode
