#!/bin/sh
# The [build] command of org.example:hello: install into $SHIPYARD_DESTDIR, as
# `make install DESTDIR=...` would. `shipyard pkg pack` then packs that directory.
set -eu
: "${SHIPYARD_DESTDIR:?SHIPYARD_DESTDIR is not set}"
echo "building hello into $SHIPYARD_DESTDIR"
mkdir -p "$SHIPYARD_DESTDIR/bin" "$SHIPYARD_DESTDIR/share/doc/hello"
cp src/hello.sh "$SHIPYARD_DESTDIR/bin/hello"
chmod 0755 "$SHIPYARD_DESTDIR/bin/hello"
cp README.md "$SHIPYARD_DESTDIR/share/doc/hello/README.md"
echo "done"
