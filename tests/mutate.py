#!/usr/bin/env python3
"""make mutate: does the suite catch the bugs it claims to?

Reads tests/mutations.txt (one small source mutation a line, with the tests
that should catch it), applies each in turn to a scratch copy of the tree,
rebuilds, runs its tests and prints caught / SURVIVED.  A mutation no test
notices is a bug the suite would let through.

    tests/mutate.py                    every mutation
    tests/mutate.py NAME...            only these (or MUTATE_ONLY="a b")
    tests/mutate.py --list             the names, nothing run

List format (fields separated by one TAB):

    name  file  pattern  replacement  tests

pattern and replacement are literal text; `\\t`, `\\n` and `\\\\` are
decoded (a tab, a newline, one backslash), any other backslash is kept as
is, so C escapes such as `\\"` or `\\0` need no doubling.  The pattern must
occur exactly once in the file, so the list fails loudly when the code moves
under it instead of silently mutating something else.  tests: pytest node ids
(from the repo root) and `unit:<name>` for build/asan/<name>.

Exit codes: 0 at least 95 % caught and no invalid mutation; 1 below that or
a mutation did not build; 2 the list is bad or a named test fails unmutated.
Standard library only; sequential (the build machine has 2 cores).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = os.path.join(ROOT, "tests", "mutations.txt")
WORK = os.path.join(ROOT, "build", "mutate")
TREE = os.path.join(WORK, "tree")
LOGS = os.path.join(WORK, "logs")
# a mutant that makes retl loop or hang is killed by the budget; it counts
# as caught (the suite did notice) but is printed as such, since a real
# assertion is a better catch than a timeout
TIMEOUT = int(os.environ.get("MUTATE_TIMEOUT", "900"))
THRESHOLD = 95.0
PYTHON = sys.executable


class ListError(Exception):
    pass


class Mutation:
    def __init__(self, lineno, name, path, pattern, replacement, tests):
        self.lineno, self.name, self.path = lineno, name, path
        self.pattern, self.replacement, self.tests = pattern, replacement, tests

    def units(self):
        return [t[5:] for t in self.tests if t.startswith("unit:")]

    def pytests(self):
        return [t for t in self.tests if not t.startswith("unit:")]


def decode(field):
    return re.sub(r"\\([\\tn])",
                  lambda m: {"\\": "\\", "t": "\t", "n": "\n"}[m.group(1)],
                  field)


def check_test(test, where):
    """A test that does not exist would make every mutation naming it look
    caught (pytest fails on an unknown node id), so names are checked here,
    not discovered at run time."""
    if test.startswith("unit:"):
        if not os.path.isfile(os.path.join(ROOT, "tests", "unit",
                                           test[5:] + ".c")):
            raise ListError(f"{where}: no unit test tests/unit/{test[5:]}.c")
        return
    parts = test.split("::")
    if len(parts) < 2 or not parts[0].endswith(".py"):
        raise ListError(f"{where}: '{test}' is neither unit:<name> nor "
                        f"a pytest node id file.py::test")
    path = os.path.join(ROOT, parts[0])
    if not os.path.isfile(path):
        raise ListError(f"{where}: no test file {parts[0]}")
    func = re.sub(r"\[.*\]$", "", parts[-1])
    with open(path, encoding="utf-8") as f:
        if not re.search(rf"^\s*def {re.escape(func)}\(", f.read(), re.M):
            raise ListError(f"{where}: no test {func} in {parts[0]}")


def load(path=None):
    """Parses and validates the whole list (tests/mutations.txt unless
    path) against the current tree; every problem is reported as
    file:line: what."""
    path = path or LIST
    rel = os.path.relpath(path, ROOT)
    muts, names, errors = [], set(), []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        where = f"{rel}:{n}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = line.split("\t")
            if len(fields) != 5:
                raise ListError(f"{where}: {len(fields)} TAB-separated "
                                f"fields, expected 5 (name file pattern "
                                f"replacement tests)")
            name, file, pattern, repl, tests = fields
            pattern, repl = decode(pattern), decode(repl)
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ListError(f"{where}: bad name '{name}'")
            if name in names:
                raise ListError(f"{where}: name '{name}' used twice")
            if not pattern or pattern == repl:
                raise ListError(f"{where}: {name}: empty pattern or "
                                f"replacement equal to it")
            src = os.path.join(ROOT, file)
            if os.path.isabs(file) or ".." in file.split("/") \
                    or not os.path.isfile(src):
                raise ListError(f"{where}: {name}: unknown file '{file}'")
            with open(src, encoding="utf-8") as s:
                count = s.read().count(pattern)
            if count != 1:
                raise ListError(f"{where}: {name}: pattern occurs {count} "
                                f"times in {file} (must be exactly once): "
                                f"{pattern!r}")
            tests = tests.split()
            if not tests:
                raise ListError(f"{where}: {name}: no tests named")
            for t in tests:
                check_test(t, f"{where}: {name}")
            names.add(name)
            muts.append(Mutation(n, name, file, pattern, repl, tests))
        except ListError as e:
            errors.append(str(e))
    if errors:
        raise ListError("\n".join(errors))
    return muts


def sync_tree():
    """The scratch copy holds the tracked (and new, unignored) files as they
    are in the working tree; its build/ is kept between runs, so only what
    changed is rebuilt.  Files are copied only when their bytes differ, and
    with a fresh mtime: an older source mtime than the copy's object would
    let make skip a changed file (a mutated file left by an interrupted run
    is restored this way too)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    files = {p for p in out.split("\0") if p and not p.startswith("build/")
             and os.path.isfile(os.path.join(ROOT, p))}
    for p in sorted(files):
        src, dst = os.path.join(ROOT, p), os.path.join(TREE, p)
        with open(src, "rb") as f:
            data = f.read()
        if os.path.isfile(dst):
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(data)
        shutil.copymode(src, dst)
    # files gone from the tree (a removed test) must not linger in the copy
    for d, subdirs, fnames in os.walk(TREE):
        rel = os.path.relpath(d, TREE)
        if rel == ".":
            subdirs[:] = [s for s in subdirs if s not in ("build", ".git")]
        for fn in fnames:
            p = os.path.normpath(os.path.join(rel, fn))
            if p not in files:
                os.unlink(os.path.join(d, fn))


def run(argv, log, timeout=None, env=None):
    """Runs argv in the copy, appending its output to log.  Returns the exit
    code, or None on timeout (the whole process group is killed: pytest's
    emulators and retl's children must not outlive the mutant)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    p = subprocess.Popen(argv, cwd=TREE, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=full_env,
                         start_new_session=True)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        log.write(f"\n== timed out after {timeout:.0f} s\n")
        return None


def build(targets, log):
    return run(["make", "-j2", "retl"] + [f"build/asan/{u}" for u in targets],
               log) == 0


def unit_env():
    return {"ASAN_OPTIONS": "detect_leaks=1"}


def pytest_argv(nodes, stop_first):
    # no cache: a run must not depend on the last one's failures
    return [PYTHON, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"] \
        + (["-x"] if stop_first else []) + nodes


def pytest_env():
    return {"RETL_BIN": os.path.join(TREE, "retl"),
            "PYTHONDONTWRITEBYTECODE": "1"}


def failed_nodes(logpath, offset):
    """Node ids pytest's short summary names as FAILED or ERROR, from the
    part of the log written since offset."""
    with open(logpath, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        text = f.read()
    return re.findall(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", text, re.M)


def baseline(muts):
    """Every named test must pass on the unmutated copy: a test that fails
    anyway would 'catch' every mutation naming it and prove nothing."""
    logpath = os.path.join(LOGS, "_baseline.log")
    units = sorted({u for m in muts for u in m.units()})
    nodes = sorted({t for m in muts for t in m.pytests()})
    bad = []
    with open(logpath, "w") as log:
        if not build(units, log):
            print(f"mutate: the unmutated copy does not build (log: "
                  f"{os.path.relpath(logpath, ROOT)})")
            return False
        for u in units:
            if run([f"build/asan/{u}"], log, env=unit_env()) != 0:
                bad.append(f"unit:{u}")
        if nodes:
            log.flush()
            offset = os.path.getsize(logpath)
            if run(pytest_argv(nodes, False), log, env=pytest_env()) != 0:
                log.flush()
                bad += failed_nodes(logpath, offset) or ["pytest (see log)"]
    for t in bad:
        print(f"mutate: fails without any mutation: {t}")
    if bad:
        print(f"mutate: fix or drop those tests first (log: "
              f"{os.path.relpath(logpath, ROOT)})")
    return not bad


def restore(path, original):
    """Puts the file back with an mtime past the mutant's build outputs, so
    the next build recompiles it even when the clock's tick is coarse."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(original)
    outputs = [os.path.join(TREE, "retl")] + [
        os.path.join(d, f)
        for d, _, fs in os.walk(os.path.join(TREE, "build", "asan"))
        for f in fs if f.startswith("test_")]
    newest = max([os.stat(p).st_mtime_ns for p in outputs
                  if os.path.exists(p)] or [0])
    if os.stat(path).st_mtime_ns <= newest:
        os.utime(path, ns=(newest + 10_000_000, newest + 10_000_000))


def try_one(m):
    """Returns (verdict, detail): caught/survived/invalid/timeout."""
    logpath = os.path.join(LOGS, m.name + ".log")
    src = os.path.join(TREE, m.path)
    with open(src, encoding="utf-8") as f:
        original = f.read()
    if original.count(m.pattern) != 1:
        return "invalid", "pattern not once in the copy"
    deadline = time.monotonic() + TIMEOUT
    with open(logpath, "w") as log:
        try:
            with open(src, "w", encoding="utf-8") as f:
                f.write(original.replace(m.pattern, m.replacement))
            log.write(f"== {m.name}: {m.path}: {m.pattern!r} -> "
                      f"{m.replacement!r}\n")
            # a mutant that does not compile kills nothing: it means the
            # list is wrong (a mutation must be a bug, not a syntax error)
            if not build(m.units(), log):
                return "invalid", "does not build"
            # unit binaries first: seconds, where pytest takes minutes
            for u in m.units():
                rc = run([f"build/asan/{u}"], log,
                         timeout=max(1, deadline - time.monotonic()),
                         env=unit_env())
                if rc is None:
                    return "timeout", f"unit:{u}"
                if rc != 0:
                    return "caught", f"unit:{u}"
            nodes = m.pytests()
            if nodes:
                log.flush()
                offset = os.path.getsize(logpath)
                rc = run(pytest_argv(nodes, True), log,
                         timeout=max(1, deadline - time.monotonic()),
                         env=pytest_env())
                if rc is None:
                    return "timeout", "pytest"
                if rc != 0:
                    log.flush()
                    failed = failed_nodes(logpath, offset)
                    return "caught", " ".join(failed) or f"pytest exit {rc}"
            return "survived", ""
        finally:
            restore(src, original)


def main(argv):
    args = [a for a in argv if a != "--list"]
    try:
        muts = load()
    except ListError as e:
        print(e)
        print("mutate: the mutation list is bad (exit 2)")
        return 2
    if "--list" in argv:
        for m in muts:
            print(m.name)
        return 0
    only = args or os.environ.get("MUTATE_ONLY", "").split()
    if only:
        known = {m.name for m in muts}
        unknown = [n for n in only if n not in known]
        if unknown:
            print(f"mutate: unknown mutation(s): {' '.join(unknown)}")
            return 2
        muts = [m for m in muts if m.name in only]
    os.makedirs(TREE, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    sync_tree()
    print(f"mutate: {len(muts)} mutations; copy in "
          f"{os.path.relpath(TREE, ROOT)}, logs in "
          f"{os.path.relpath(LOGS, ROOT)}", flush=True)
    if not baseline(muts):
        return 2
    counts = {"caught": 0, "timeout": 0, "survived": 0, "invalid": 0}
    width = max(len(m.name) for m in muts)
    for m in muts:
        t0 = time.monotonic()
        verdict, detail = try_one(m)
        counts[verdict] += 1
        secs = f"({time.monotonic() - t0:.0f} s)"
        name = m.name.ljust(width)
        if verdict == "caught":
            print(f"caught    {name}  by {detail} {secs}", flush=True)
        elif verdict == "timeout":
            print(f"caught    {name}  by timeout ({TIMEOUT} s, in {detail})",
                  flush=True)
        elif verdict == "survived":
            print(f"SURVIVED  {name}  {secs}", flush=True)
        else:
            print(f"INVALID   {name}  {detail} (log: build/mutate/logs/"
                  f"{m.name}.log)", flush=True)
    # leave the copy built from the unmutated sources for the next run
    with open(os.path.join(LOGS, "_final.log"), "w") as log:
        build([], log)
    caught = counts["caught"] + counts["timeout"]
    pct = 100.0 * caught / len(muts)
    print(f"mutate: {caught} caught of {len(muts)} ({pct:.1f} %)"
          + (f", {counts['timeout']} of them by timeout"
             if counts["timeout"] else "")
          + (f", {counts['invalid']} INVALID" if counts["invalid"] else ""))
    if counts["invalid"]:
        print("mutate: fix the invalid mutations (each must build)")
        return 1
    if pct < THRESHOLD:
        print(f"mutate: below {THRESHOLD:.0f} %")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
