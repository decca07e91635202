#!/bin/sh
# runtime-root.sh - the runtime image's user and paths, run as root inside
# the runtime root: by docker/Dockerfile and by tests/rootfs/check.sh (which
# rebuilds that root without Docker), so the two cannot differ.
#
#   /config    the project directory (retl.json + mappings/), mounted
#              read-only; retl never writes there
#   /project   the one directory retl writes to, owned by user retl (uid
#              10001): state/ (the state store), out/ (file destinations),
#              .retl-salesforce/ (Salesforce's spools and bulk job maps),
#              beside links to /config/retl.json and /config/mappings.  retl
#              runs with --config /project, so every relative path of the
#              project lands here.
#
# The links are made again by retl-entrypoint at each start, because a
# volume or host directory mounted at /project hides the image's.
set -eu
groupadd --gid 10001 retl
useradd --uid 10001 --gid retl --home-dir /project --no-create-home \
        --shell /usr/sbin/nologin retl
mkdir -p /config /project
chown retl:retl /project
chmod 0750 /project
ln -s /config/retl.json /project/retl.json
ln -s /config/mappings /project/mappings
