#!/bin/sh
# retl-entrypoint - the image's entry point: `retl --config /project ARGS`.
# /project is the directory retl writes to (docker/runtime-root.sh); the
# project's retl.json and mappings/ come from /config (mounted read-only)
# through links, remade here when /project is a fresh volume or host
# directory.  A real file or directory of that name in /project (a project
# mounted at /project itself) is left alone.  Links rather than copies: a
# SIGHUP reload reads the file as it is now in /config.
set -eu
for f in retl.json mappings; do
	if [ -e "/config/$f" ] && { [ -L "/project/$f" ] || [ ! -e "/project/$f" ]; }; then
		[ "$(readlink "/project/$f" || true)" = "/config/$f" ] ||
			ln -sfn "/config/$f" "/project/$f"
	fi
done
exec retl --config /project "$@"
