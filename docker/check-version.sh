#!/bin/sh
# check-version.sh QPO_BINARY QPO_VERSION: run in the images' build stage. Docker cannot set
# a label from a command's output, so the label comes from the QPO_VERSION build argument and
# this refuses the build unless that argument is exactly what `qpo --version` prints.
set -eu
bin=$1 want=$2
got=$("$bin" --version)
if [ -z "$want" ]; then
    echo "check-version.sh: QPO_VERSION is empty; build with QPO_VERSION=\"\$(./qpo.sh version)\"" >&2
    echo "  (the binary says: $got)" >&2
    exit 1
fi
if [ "$got" != "qpo $want" ]; then
    echo "check-version.sh: QPO_VERSION=$want, but the binary says: $got" >&2
    echo "  build with QPO_VERSION=\"\$(./qpo.sh version)\" from the same checkout" >&2
    exit 1
fi
echo "$got"
