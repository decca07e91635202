"""pgcluster.py - a throwaway PostgreSQL cluster for tests, the demo and the
benchmark.  Python 3 standard library only.

    with PgCluster() as pg:
        pg.psql("CREATE TABLE t (id int)")
        subprocess.run(["./retl", ...], env={..., "DSN": pg.dsn})

The cluster lives in a fresh temporary directory (data directory, unix
socket, log), listens on no TCP address, and runs with fsync off.  stop()
kills it (pg_ctl -m immediate) and removes the directory; an atexit hook
does the same if the caller forgot, so nothing is left running.

initdb refuses to run as root.  When we are root (CI is), the cluster runs as
a system user "retlpg" (created with useradd if missing) through runuser, and
the temporary directory is handed to that user; the socket directory stays
reachable for root and everyone else.
"""

import atexit
import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time

SERVICE_USER = "retlpg"


def _find_bindir():
    """Directory holding initdb and pg_ctl."""
    candidates = []
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if out:
            candidates.append(out)
    except (OSError, subprocess.CalledProcessError):
        pass

    def version_key(path):
        part = path.rstrip("/").split("/")[-2]
        try:
            return float(part)
        except ValueError:
            return 0.0

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=version_key, reverse=True)
    candidates += ["/usr/local/pgsql/bin", "/usr/pgsql/bin"]
    for d in candidates:
        if os.access(os.path.join(d, "initdb"), os.X_OK) and \
           os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                       "install the 'postgresql' package (make deps)")


def _free_port():
    # listen_addresses is empty, so the port only names the socket file; a
    # port free on loopback keeps it unique on this machine all the same.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _world_traversable(path):
    """Can another user reach entries inside `path`?"""
    path = os.path.abspath(path)
    while True:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _clean_env():
    # the caller's PG* variables (PGHOST, PGDATABASE, PGOPTIONS...) must not
    # redirect our tools to another server
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PgCluster:
    def __init__(self, bindir=None, keep=False):
        self.bindir = bindir or _find_bindir()
        self.keep = keep            # keep the directory after stop (debugging)
        self.base = None
        self.datadir = None
        self.sockdir = None
        self.logfile = None
        self.port = None
        self.running = False
        self._as_user = None
        self._atexit = False

    # -- helpers ---------------------------------------------------------
    def _bin(self, name):
        path = os.path.join(self.bindir, name)
        if os.access(path, os.X_OK):
            return path
        found = shutil.which(name)
        if found:
            return found
        raise RuntimeError(f"{name} not found in {self.bindir} or PATH")

    def _run_server_tool(self, argv, check=True):
        """Runs initdb/pg_ctl, as the service user when we are root."""
        if self._as_user:
            argv = ["runuser", "-u", self._as_user, "--"] + argv
        res = subprocess.run(argv, cwd=self.base, env=_clean_env(),
                             stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed (exit {res.returncode}):\n"
                f"{res.stdout}{res.stderr}{self._log_tail()}")
        return res

    def _log_tail(self, n=30):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()[-n:]
            return "--- server log ---\n" + "".join(lines)
        except (OSError, TypeError):
            return ""

    @staticmethod
    def _ensure_service_user():
        try:
            pwd.getpwnam(SERVICE_USER)
            return
        except KeyError:
            pass
        nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") \
            else "/bin/false"
        res = subprocess.run(["useradd", "-r", "-M", "-s", nologin,
                              "-d", "/nonexistent", SERVICE_USER],
                             capture_output=True, text=True)
        if res.returncode != 0:
            try:  # a parallel test process may have just created it
                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                raise RuntimeError(f"useradd {SERVICE_USER} failed: "
                                   f"{res.stderr.strip()}") from None

    # -- lifecycle -------------------------------------------------------
    def start(self):
        if self.running:
            return self
        root = os.geteuid() == 0
        tmp = tempfile.gettempdir()
        if root:
            self._ensure_service_user()
            self._as_user = SERVICE_USER
            if not _world_traversable(tmp):
                tmp = "/tmp"
        self.base = tempfile.mkdtemp(prefix="retl-pg-", dir=tmp)
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "server.log")
        os.mkdir(self.sockdir)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            if root:
                pw = pwd.getpwnam(SERVICE_USER)
                for p in (self.base, self.sockdir):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
                # others (root's retl, psql) must reach the socket
                os.chmod(self.base, 0o755)
                os.chmod(self.sockdir, 0o755)
            self._run_server_tool([
                self._bin("initdb"), "-D", self.datadir, "-A", "trust",
                "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C",
                "--no-instructions"
                if self._initdb_has("--no-instructions") else "-N"])
            self.port = _free_port()
            settings = {
                "listen_addresses": "''",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.sockdir}'",
                "unix_socket_permissions": "0777",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "40",
                "shared_buffers": "'128MB'",
                "log_min_messages": "warning",
                "logging_collector": "off",
            }
            # appended as the service user may not let us open it otherwise;
            # root can always write it, a non-root owner too
            with open(os.path.join(self.datadir, "postgresql.conf"), "a",
                      encoding="utf-8") as f:
                f.write("\n# retl test cluster\n")
                for k, v in settings.items():
                    f.write(f"{k} = {v}\n")
            if root:
                open(self.logfile, "a").close()
                pw = pwd.getpwnam(SERVICE_USER)
                os.chown(self.logfile, pw.pw_uid, pw.pw_gid)
            self._run_server_tool([
                self._bin("pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                "-w", "-t", "60", "start"])
            self.running = True
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb_has(self, flag):
        # --no-instructions appeared in PostgreSQL 13; -N is --no-sync there
        res = subprocess.run([self._bin("initdb"), "--help"],
                             capture_output=True, text=True)
        return flag in res.stdout

    def _wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            res = subprocess.run(self._psql_argv() + ["-c", "SELECT 1"],
                                 capture_output=True, text=True,
                                 env=_clean_env(), stdin=subprocess.DEVNULL)
            if res.returncode == 0:
                return
            last = res.stderr
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections: {last}"
                           f"{self._log_tail()}")

    def stop(self):
        if self.running:
            self._run_server_tool([self._bin("pg_ctl"), "-D", self.datadir,
                                   "-m", "immediate", "-w", "stop"],
                                  check=False)
            self.running = False
        if self.base and os.path.isdir(self.base) and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        if self.base and not self.keep:
            self.base = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- client side -----------------------------------------------------
    @property
    def dsn(self):
        return (f"host={self.sockdir} port={self.port} "
                f"user=postgres dbname=postgres")

    def _psql_argv(self, dbname=None):
        dsn = self.dsn if dbname is None else self.dsn.replace(
            "dbname=postgres", f"dbname={dbname}")
        return [self._bin("psql"), "-v", "ON_ERROR_STOP=1", "-X", "-q",
                "-d", dsn]

    def psql(self, sql, *args, check=True, dbname=None):
        """Runs sql (any number of statements) through psql and returns
        stdout.  Extra args go to psql, e.g. psql("SELECT 1", "-At")."""
        res = subprocess.run(self._psql_argv(dbname) + list(args) + ["-f", "-"],
                             input=sql, capture_output=True, text=True,
                             env=_clean_env())
        if check and res.returncode != 0:
            raise RuntimeError(f"psql failed (exit {res.returncode}): "
                               f"{res.stderr.strip()}\nSQL: {sql[:500]}")
        return res.stdout

    def scalar(self, sql):
        """First column of the first row, as text ('' when no row)."""
        out = self.psql(sql, "-At")
        return out.split("\n", 1)[0]


if __name__ == "__main__":
    # smoke test: python3 tests/pgcluster.py
    with PgCluster() as pg:
        print(pg.dsn)
        print(pg.psql("SELECT version()", "-At").strip())
