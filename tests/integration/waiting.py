"""Waiting on an observable event, with a deadline: the one way the
integration tests synchronise with retl, the daemon and the emulators.

    wait_for(predicate, timeout, what, detail=None, interval=0.02)

calls predicate() until it returns something truthy and returns that; past
the deadline it fails naming what was awaited (and detail(), if given, e.g.
the daemon's log).  The predicate may itself raise AssertionError to stop
early (the process it waits on died).

The timeout only stops a hang: make it generous (tens of seconds), never
a measure of how fast retl is; a loaded machine is slow, not wrong.  A
fixed time.sleep() to let something happen, or to "prove" it did not, has
no place in these tests: wait on the event (a log line, /metrics, the runs
table, a file, the process's state) or on the observable decision.
"""

import time


def wait_for(predicate, timeout, what, detail=None, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout} s waiting for {what}"
            if detail is not None:
                msg += "\n" + str(detail())
            raise AssertionError(msg)
        # the poll interval, the one sleep allowed here: it paces the
        # predicate, it does not wait for anything itself
        time.sleep(interval)
