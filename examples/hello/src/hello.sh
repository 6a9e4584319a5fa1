#!/bin/sh
# Finds org.example:hello-lib beside itself in the software root:
# <software>/org/example/hello/<version>/bin/hello -> <software>/org/example/hello-lib/*/
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
lib=""
for candidate in "$here"/../../hello-lib/*/lib/greeting.sh; do
    [ -f "$candidate" ] && lib=$candidate
done
if [ -n "$lib" ]; then
    . "$lib"
    shipyard_greeting "${1:-world}"
else
    echo "hello-lib is not installed" >&2
    exit 1
fi
