#!/bin/sh
# fresh_host.sh - `make fresh-host-check`: `make deps`, `make retl` and
# `make demo` as root on a fresh Debian 12, and what they leave behind.
#
#   1. debootstrap --variant=minbase bookworm into build/fresh-host (the
#      mirror and the .deb cache of tests/rootfs/lib.sh; the packages apt
#      downloads inside are kept in build/rootfs-cache/apt-archives)
#   2. the repository's tracked files (git ls-files: no build/, no binary)
#      copied to /usr/src/retl inside it; `make` installed, as a person
#      would before their first `make deps`
#   3. inside it, as root: make deps, make retl, make demo; a line per check,
#      "ok" or "BAD":
#        make deps exits 0 and says what it installs ("installing: ...")
#        no PostgreSQL cluster (pg_lsclusters, /etc/postgresql,
#        /var/lib/postgresql) and nothing listening on port 5432
#        initdb and pg_ctl in /usr/lib/postgresql/15/bin (tests/pgcluster.py)
#        make retl builds; make demo exits 0
#        after the demo: no user or group retlpg (tests/pgcluster.py creates
#        it for a root demo), no process left in the root, still no cluster
#
# Exit status 1 when a check is BAD, 2 when it cannot run.  The root stays
# in build/fresh-host for inspection (logs: build/fresh-host-*.log); the next
# run or `make clean` removes it.  Whatever happens, processes left in the
# root are ended and its mounts (proc, /dev/shm, the apt cache) undone.
# Needs root (debootstrap, chroot, mount) and the mirror; not part of
# `make test`: a first run downloads about 1 GB.
set -u
cd "$(dirname "$0")/../.."
ROOT=build/fresh-host
SRC=/usr/src/retl
. tests/rootfs/lib.sh
[ "$(id -u)" = 0 ] || { echo "fresh-host-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "fresh-host-check: debootstrap not installed" >&2; exit 2; }
mirror=$(rootfs_mirror)
start=$(date +%s)

# the processes whose root directory is ours (left by a failed step: a
# cluster, the demo); ended by pid, never by name
root_pids() {
	r=$(cd "$ROOT" 2>/dev/null && pwd -P) || return 0
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$r" ] && echo "${p#/proc/}"
	done
}
cleanup() {
	pids=$(root_pids)
	if [ -n "$pids" ]; then
		kill $pids 2>/dev/null
		sleep 2
		kill -9 $(root_pids) 2>/dev/null
	fi
	rootfs_umount_all "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# a command as root inside the root, with a fresh login's environment
in_root() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh -c "$1"
}

nbad=0
nchecks=0
# check WHAT STATUS [DETAIL]: a line "ok WHAT" or "BAD WHAT (DETAIL)"
check() {
	nchecks=$((nchecks + 1))
	if [ "$2" = 0 ]; then
		echo "ok   $1"
	else
		echo "BAD  $1${3:+ ($3)}"
		nbad=$((nbad + 1))
	fi
}

# listening TCP sockets on port 5432 (0x1538, state 0A) in this network
# namespace, which the root shares; and the unix socket a system cluster
# would create.  A chroot starts no services (invoke-rc.d), so a cluster
# made by the packages is "down" here: the cluster checks catch it, this
# one catches a server something else started
listen_5432() {
	awk '$2 ~ /:1538$/ && $4 == "0A"' /proc/net/tcp /proc/net/tcp6 2>/dev/null | wc -l
}
no_cluster() {
	clusters=$(in_root 'pg_lsclusters -h' 2>&1)
	check "$1: pg_lsclusters lists no cluster" "$([ -z "$clusters" ] && echo 0 || echo 1)" "$clusters"
	found=$(find "$ROOT/etc/postgresql" "$ROOT/var/lib/postgresql" -name postgresql.conf -o \
		-name PG_VERSION 2>/dev/null | sed "s|^$ROOT||" | tr '\n' ' ')
	check "$1: no cluster in /etc/postgresql or /var/lib/postgresql" \
		"$([ -z "$found" ] && echo 0 || echo 1)" "$found"
	n=$(listen_5432)
	sock=$(ls "$ROOT"/var/run/postgresql/.s.PGSQL.5432 2>/dev/null)
	check "$1: nothing listens on port 5432" "$([ "$n" = 0 ] && [ -z "$sock" ] && echo 0 || echo 1)" \
		"$n TCP listeners${sock:+, $sock}"
}

echo "== debootstrap --variant=minbase bookworm $ROOT $mirror"
[ "$(listen_5432)" = 0 ] ||
	{ echo "fresh-host-check: something on this machine listens on port 5432 already" >&2; exit 2; }
rootfs_debootstrap "$ROOT" "$mirror" || exit 2
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc" || exit 2
# PostgreSQL's shared memory (dynamic_shared_memory_type = posix)
mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm" || exit 2
mkdir -p build/rootfs-cache/apt-archives/partial
mount --bind build/rootfs-cache/apt-archives "$ROOT/var/cache/apt/archives" || exit 2

echo "== the repository's tracked files to $SRC; apt-get install make"
mkdir -p "$ROOT$SRC"
git ls-files -z | tar --null --no-recursion -T - -cf - | tar -C "$ROOT$SRC" -xf - || exit 2
in_root 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q make' \
	>build/fresh-host-make.log 2>&1 || { tail -n 20 build/fresh-host-make.log; exit 2; }

echo "== make deps (log: build/fresh-host-deps.log)"
in_root "cd $SRC && make deps" >build/fresh-host-deps.log 2>&1
rc=$?
check "make deps exits 0" "$rc" "exit $rc; tail of the log:
$(tail -n 15 build/fresh-host-deps.log)"
grep -E '^[a-z-]+: (installing|all present):' build/fresh-host-deps.log | sed 's/^/     | /'
said=$(grep -cE '^[a-z-]+: installing: ?[a-z]' build/fresh-host-deps.log)
check "make deps says what it installs (installing: lines)" "$([ "$said" -gt 0 ] && echo 0 || echo 1)" \
	"no installing: line"
no_cluster "after make deps"
for b in initdb pg_ctl; do
	check "after make deps: /usr/lib/postgresql/15/bin/$b" \
		"$([ -x "$ROOT/usr/lib/postgresql/15/bin/$b" ] && echo 0 || echo 1)" "missing"
done

echo "== make retl (log: build/fresh-host-retl.log)"
in_root "cd $SRC && make -j2 retl" >build/fresh-host-retl.log 2>&1
rc=$?
check "make retl builds" "$([ "$rc" = 0 ] && [ -x "$ROOT$SRC/retl" ] && echo 0 || echo 1)" \
	"exit $rc; tail of the log:
$(tail -n 15 build/fresh-host-retl.log)"

had_user=$(in_root 'getent passwd retlpg')
echo "== make demo (log: build/fresh-host-demo.log)"
in_root "cd $SRC && make demo" >build/fresh-host-demo.log 2>&1
rc=$?
check "make demo exits 0" "$rc" "exit $rc; tail of the log:
$(tail -n 15 build/fresh-host-demo.log)"
grep retlpg build/fresh-host-demo.log | sed 's/^/     | /'

left=$(in_root 'getent passwd retlpg; getent group retlpg')
check "after make demo: no user or group retlpg (getent)" "$([ -z "$left" ] && echo 0 || echo 1)" \
	"$left${had_user:+; it was there before the demo}"
procs=""
for p in $(root_pids); do
	procs="$procs $p:$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-60)"
done
check "after make demo: no process left in the root" "$([ -z "$procs" ] && echo 0 || echo 1)" "$procs"
no_cluster "after make demo"

secs=$(($(date +%s) - start))
if [ "$nbad" = 0 ]; then
	echo "fresh-host-check: all $nchecks checks ok (${secs} s)"
	exit 0
fi
echo "fresh-host-check: $nbad of $nchecks checks BAD (${secs} s)"
exit 1
