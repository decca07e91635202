"""emuproc.py - an emulator run as its own process, so that its CPU can be
read apart from the bench script's and retl's.

The CPU cases (bench_hubspot.py, bench_webhook.py) state the emulator's own
CPU next to retl's, to show the emulator is not what limits the run.  An
emulator started in-process (emulator.start()) shares the bench script's
process: its threads' CPU cannot be told from the script's.  Here it is
`python3 tests/emulators/<name>.py --port 0 ...` in a child process; its
user + system CPU comes from /proc/<pid>/stat (fields 14 and 15, in clock
ticks), read before and after the measured run.
"""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATORS = os.path.join(os.path.dirname(HERE), "emulators")
TICK = os.sysconf("SC_CLK_TCK")


def measured_run(emu, argv, env, log_path):
    """Runs argv (after BENCH_WRAP, a command line put before it, e.g.
    "valgrind --tool=callgrind", to profile the run the bench measures),
    its output into log_path: (retl's user + system CPU s, the emulator's
    CPU s over the same time, wall s), or None when it failed (its log
    printed)."""
    wrap = os.environ.get("BENCH_WRAP", "").split()
    with open(log_path, "w") as log:
        e0, t0 = emu.cpu(), time.perf_counter()
        p = subprocess.Popen(wrap + argv, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall, e1 = time.perf_counter() - t0, emu.cpu()
    if status != 0:
        with open(log_path) as log:
            print(log.read(), file=sys.stderr)
        return None
    return ru.ru_utime + ru.ru_stime, e1 - e0, wall


class EmulatorProcess:
    def __init__(self, name, *args):
        """starts tests/emulators/<name>.py with args; waits for its
        "listening on URL" line"""
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(EMULATORS, name + ".py"), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"emulator {name} did not start: {line!r}")
        self.url = line[len("listening on "):]

    def cpu(self):
        """user + system CPU seconds the emulator has used so far"""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # the command name (field 2) may hold spaces: count after ')'
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
