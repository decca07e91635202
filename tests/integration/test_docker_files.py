"""The Docker files, read as Docker would read them (no Docker engine runs
here: `make rootfs-check` runs the runtime stage's root; this checks what
that script cannot see).

- the build context leaves out the history, local builds, a project's
  state and outputs (warehouse rows) and secrets (.dockerignore);
- the build stage installs what building needs only (`make build-deps`:
  no PostgreSQL server, no pytest, no fuzzing toolchain);
- compose mounts the project directory, never a single file (an editor's
  save replaces the file, which a file bind mount would never show).
"""

import fnmatch
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def ignored(patterns, path):
    """Docker's rule, enough for these patterns: the last matching
    pattern wins; a pattern matches the path or one of its parents"""
    out = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            head = "/".join(parts[:i])
            if fnmatch.fnmatch(head, pat) or (pat.startswith("**/") and
                                              fnmatch.fnmatch(head, pat[3:])) or \
               (pat.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pat[3:])):
                out = not neg
                break
    return out


def test_build_context_leaves_out_history_state_outputs_and_secrets():
    pats = [l.strip() for l in read(".dockerignore").splitlines()
            if l.strip() and not l.startswith("#")]
    for p in (".git/HEAD", "build/asan/x.o", "retl", "state/retl.db",
              "out/customers.jsonl", ".retl-salesforce/spool",
              "docker/retl.env", "tests/unit/test_buf.c"):
        assert ignored(pats, p), f"{p} would go into the build context"
    # what the build stage needs stays in
    for p in ("Makefile", "src/sync.c", "destinations/file.c", "retl.json",
              "mappings/customers.json", "docker/entrypoint.sh",
              "docker/runtime-root.sh"):
        assert not ignored(pats, p), f"{p} is needed by the build"


def test_build_stage_installs_build_packages_only():
    df = read("docker", "Dockerfile")
    build = df.split("FROM ", 2)[1]
    assert "make build-deps" in build and "make deps" not in build
    mk = read("Makefile")
    pkgs = re.search(r"^BUILD_PKGS\s*=\s*((?:.*\\\n)*.*)$", mk, re.M).group(1)
    pkgs = pkgs.replace("\\\n", " ").split()
    assert "libpq-dev" in pkgs
    for p in pkgs:
        assert not re.match(r"postgresql(-\d+)?$|python3-pytest|clang|llvm", p), p
    runtime = re.search(r'^ARG RUNTIME_PKGS="(.*)"$', df, re.M).group(1).split()
    for p in runtime:
        assert not p.endswith("-dev") and not p.startswith("postgresql"), p


def test_compose_mounts_directories_not_files():
    compose = read("docker", "compose.yml")
    retl = compose.split("\n  retl:\n", 1)[1]
    mounts = re.findall(r"^\s+- (\S+):(/[^:\s]*)(?::ro)?$", retl, re.M)
    assert ("..", "/config") in mounts, mounts
    assert ("data", "/project") in mounts, mounts
    for src, dst in mounts:
        host = os.path.join(REPO, "docker", src)
        if src.startswith("."):
            assert os.path.isdir(host), f"{src} is a single-file mount"
