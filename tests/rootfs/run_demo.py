#!/usr/bin/env python3
"""run_demo.py ROOT - the second half of tests/rootfs/check.sh: make demo's
steps (tests/demo/demo.py) with retl inside ROOT, a rebuilt root of the
Docker image's runtime stage, run as the image's user `retl`.

As in the image (docker/Dockerfile, docker/runtime-root.sh): the example
project, pointed at the emulators, is mounted read-only at /config; each
command is `retl-entrypoint ARGS` (= retl --config /project ARGS) started in
/project as user retl (chroot, then setpriv), with an environment of its own
(PATH, HOME, the warehouse's DSN and the destinations' secrets).  PostgreSQL
(tests/pgcluster.py; its socket directory is bound into ROOT at the same
path) and the emulators (in this process) run outside the root, on loopback.

Then: the state store, the file outputs and Salesforce's spools are under
/project and owned by retl, and retl wrote nothing anywhere else in ROOT.
Everything mounted is unmounted at the end, whatever happens.
Exit 0 when every step and check is as expected, 1 otherwise.
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "demo"))

import demo  # noqa: E402
from demo import PgCluster  # noqa: E402

UID = 10001        # docker/runtime-root.sh


def sh(*argv):
    subprocess.run(argv, check=True)


class Mounts:
    def __init__(self, root):
        self.root = root
        self.points = []

    def bind(self, src, rel, ro=False):
        dst = os.path.join(self.root, rel.lstrip("/"))
        os.makedirs(dst, exist_ok=True)
        sh("mount", "--bind", src, dst)
        self.points.append(dst)
        if ro:
            sh("mount", "-o", "remount,bind,ro", dst)
        return dst

    def proc(self):
        dst = os.path.join(self.root, "proc")
        sh("mount", "-t", "proc", "proc", dst)
        self.points.append(dst)

    def release(self):
        for p in reversed(self.points):
            subprocess.run(["umount", p])
        self.points = []


def strays(root, skip):
    """files in root owned by retl outside /project (not under skip)"""
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
        for x in dirs + files:
            p = os.path.join(d, x)
            if os.lstat(p).st_uid == UID and not p.startswith(skip[0] + "/") \
               and p != skip[0]:
                found.append(p)
    return found


def check_layout(d, root, skip):
    project = os.path.join(root, "project")
    listing = subprocess.run(["ls", "-la", project, os.path.join(project, "state"),
                              os.path.join(project, "out"),
                              os.path.join(project, ".retl-salesforce")],
                             capture_output=True, text=True)
    demo.banner("ls -la /project /project/state /project/out /project/.retl-salesforce")
    print(listing.stdout + listing.stderr, end="")
    for rel, kind in (("state/retl.db", os.path.isfile),
                      ("out/customers.jsonl", os.path.isfile),
                      ("out/segment_vip.jsonl", os.path.isfile),
                      (".retl-salesforce", os.path.isdir)):
        p = os.path.join(project, rel)
        d.check(f"/project/{rel}", kind(p) and os.lstat(p).st_uid == UID,
                "present, owned by retl" if kind(p) and os.lstat(p).st_uid == UID
                else ("owned by uid %d" % os.lstat(p).st_uid if os.path.lexists(p)
                      else "missing"))
    others = []
    for dd, dirs, files in os.walk(project):
        for x in dirs + files:
            p = os.path.join(dd, x)
            if not os.path.islink(p) and os.lstat(p).st_uid != UID:
                others.append(p)
    d.check("everything under /project owned by retl", not others,
            ", ".join(others) or "yes")
    s = strays(root, skip)
    d.check("files retl made outside /project", not s, ", ".join(s[:5]) or "none")


def main():
    root = os.path.abspath(sys.argv[1])
    config = os.path.join(REPO, "build", "rootfs-config")
    shutil.rmtree(config, ignore_errors=True)
    mounts = Mounts(root)
    bad = 1
    with demo.ServiceUser():
        pg = PgCluster()
        emus = demo.Emulators()
        try:
            demo.load_warehouse(pg)
            emus.start()
            demo.copy_project(config, emus)
            mounts.proc()
            mounts.bind("/dev", "/dev")
            mounts.bind(config, "/config", ro=True)
            mounts.bind(pg.sockdir, pg.sockdir)
            env = dict(demo.SECRETS, PATH="/usr/local/bin:/usr/bin:/bin",
                       HOME="/project", WAREHOUSE_URL=pg.dsn)
            argv0 = [shutil.which("chroot") or "/usr/sbin/chroot", root, "/bin/sh", "-c",
                     'cd /project && exec setpriv --reuid=retl --regid=retl '
                     '--init-groups retl-entrypoint "$@"', "retl-entrypoint"]
            d = demo.Demo(argv0, env, REPO)
            demo.banner(f"retl as user retl in {root}: "
                        + " ".join(argv0[:3]) + " 'cd /project && exec setpriv "
                        "--reuid=retl --regid=retl --init-groups retl-entrypoint ARGS'")
            d.retl_step(["--version"], {0})
            demo.run_demo(pg, emus, d, os.path.join(root, "project"))
            check_layout(d, root, [os.path.join(root, "project")]
                         + [os.path.join(root, p) for p in ("proc", "dev", "config")]
                         + [os.path.join(root, pg.sockdir.lstrip("/"))])
            bad = d.summary()
        finally:
            mounts.release()
            emus.stop()
            pg.stop()
    print("rootfs-check: ok" if not bad else "rootfs-check: FAILED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
