#!/bin/sh
# check.sh - `make rootfs-check`: the Docker image's runtime stage rebuilt
# without Docker, and the example project run in it as the image's user.
#
#   1. debootstrap --variant=minbase bookworm into build/rootfs, from the
#      Debian mirror this machine's apt uses (ROOTFS_MIRROR overrides;
#      downloaded packages are kept in build/rootfs-cache)
#   2. the runtime packages read from docker/Dockerfile (its one line
#      ARG RUNTIME_PKGS="..."), so the list cannot drift from the image's
#   3. docker/runtime-root.sh run inside it (user retl, uid 10001; /config,
#      /project), then the Dockerfile's COPYs: ./retl (built here, on the
#      same Debian 12) as /usr/local/bin/retl, docker/entrypoint.sh as
#      /usr/local/bin/retl-entrypoint
#   4. tests/rootfs/run_demo.py: make demo's steps (tests/demo/demo.py), with
#      every retl command run as `chroot build/rootfs setpriv --reuid=retl
#      ... retl-entrypoint ARGS`, the example project mounted read-only at
#      /config, PostgreSQL (tests/pgcluster.py) and the emulators outside
#      the root; then checks that state and spools are in /project, owned
#      by retl, and that retl wrote nothing anywhere else
#
# Needs root (debootstrap, chroot, mount) and network access to the mirror.
# Not part of `make test`: it downloads a Debian root (about 2 minutes).
set -eu
cd "$(dirname "$0")/../.."
ROOT=build/rootfs
[ "$(id -u)" = 0 ] || { echo "rootfs-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
[ -x ./retl ] || { echo "rootfs-check: ./retl not built (make retl)" >&2; exit 2; }

. tests/rootfs/lib.sh
mirror=$(rootfs_mirror)
pkgs=$(sed -n 's/^ARG RUNTIME_PKGS="\(.*\)"$/\1/p' docker/Dockerfile)
[ -n "$pkgs" ] || { echo "rootfs-check: no ARG RUNTIME_PKGS=\"...\" line in docker/Dockerfile" >&2; exit 2; }

echo "== debootstrap --variant=minbase bookworm $ROOT $mirror"
rootfs_debootstrap "$ROOT" "$mirror" || exit 1

echo "== runtime packages (docker/Dockerfile RUNTIME_PKGS): $pkgs"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
chroot "$ROOT" sh -c "apt-get update -q >/dev/null && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs \
	>/var/log/retl-runtime-pkgs.log 2>&1 && rm -rf /var/lib/apt/lists/*" ||
	{ tail -n 20 "$ROOT/var/log/retl-runtime-pkgs.log"; exit 1; }
umount "$ROOT/proc"
trap - EXIT

echo "== docker/runtime-root.sh (user retl, /config, /project) and the binary"
mkdir -p "$ROOT/usr/local/lib/retl"
cp docker/runtime-root.sh "$ROOT/usr/local/lib/retl/runtime-root.sh"
chroot "$ROOT" sh /usr/local/lib/retl/runtime-root.sh
install -m 0755 retl "$ROOT/usr/local/bin/retl"
install -m 0755 docker/entrypoint.sh "$ROOT/usr/local/bin/retl-entrypoint"
chroot "$ROOT" sh -c 'id retl; ls -ld /config /project; ls -l /project'
if chroot "$ROOT" ldd /usr/local/bin/retl | grep 'not found'; then
	echo "rootfs-check: a library retl links is not in RUNTIME_PKGS" >&2
	exit 1
fi

echo "== the example project in $ROOT as user retl"
exec /usr/bin/python3 tests/rootfs/run_demo.py "$ROOT"
