# lib.sh - what tests/rootfs/check.sh (make rootfs-check) and
# tests/rootfs/fresh_host.sh (make fresh-host-check) share: the mirror, the
# debootstrap with its package cache, and unmounting a root.  Sourced (sh),
# from the repository's top directory.

# the Debian mirror this machine's apt uses (deb822 "URIs:" or a one-line
# "deb URL suite"); ROOTFS_MIRROR overrides; deb.debian.org when none
rootfs_mirror() {
	m=${ROOTFS_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
		/etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }
		     /^deb / && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^http/) { print $i; exit } }')}
	echo "${m:-http://deb.debian.org/debian}"
}

# unmounts everything mounted under the root $1, deepest first (a root left
# mounted by an interrupted run must be unmounted before rm -rf, or the
# removal would reach into the host's /proc or the package cache)
rootfs_umount_all() {
	for m in $(rootfs_mounts "$1"); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
}

# the mount points under the root $1 (its physical path, as /proc/mounts
# names them), deepest first
rootfs_mounts() {
	[ -d "$1" ] || return 0
	awk -v r="$(cd "$1" && pwd -P)/" 'r != "//" && index($2, r) == 1 { print $2 }' \
		/proc/mounts | sort -r
}

# a fresh minbase bookworm in $1 (removed first) from mirror $2; the .debs
# are kept in build/rootfs-cache, the log in $1-debootstrap.log
rootfs_debootstrap() {
	rootfs_umount_all "$1"
	[ -z "$(rootfs_mounts "$1")" ] ||
		{ echo "still mounted under $1: $(rootfs_mounts "$1")" >&2; return 1; }
	rm -rf "$1"
	mkdir -p build/rootfs-cache
	debootstrap --variant=minbase --cache-dir="$(pwd)/build/rootfs-cache" \
		bookworm "$1" "$2" >"$1-debootstrap.log" 2>&1 ||
		{ tail -n 20 "$1-debootstrap.log"; return 1; }
}
