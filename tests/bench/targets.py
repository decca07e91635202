"""targets.py - the targets a bench script prints, and its exit status.

Every target is printed PASS or MISS where it is measured; a miss makes the
script exit 1, but only after every result was printed (one miss must not
hide the other numbers).  Without this the bench printed MISS and exited 0,
so a regression that costs only speed (a cache that loses its source
hashes, say) passed unnoticed.
"""


class Targets:
    def __init__(self, script):
        self.script = script
        self.missed = []

    def check(self, ok, what, got):
        """records target `what` (got: the measured value, as printed);
        returns "PASS" or "MISS" for the caller's own line"""
        if not ok:
            self.missed.append(f"{what} (got {got})")
        return "PASS" if ok else "MISS"

    def exit_code(self, failed=0):
        """1 when a target was missed or failed is set (a command failed),
        after one line per missed target"""
        for m in self.missed:
            print(f"{self.script}: target missed: {m}")
        return 1 if self.missed or failed else 0
