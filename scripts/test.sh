#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds and runs every Swift test target,
# then the Python protocol client tests (a client written from Protocols/ alone) against
# the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift test "$@"
CODEBOOK_BIN="$PWD/.build/debug/codebook" python3 -m pytest -q Tests/python
