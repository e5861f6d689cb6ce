#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds and runs every Swift test target
# (one test at a time: many start processes and time heartbeats, and share 2 cores),
# then the Python protocol client tests (a client written from Protocols/ alone) against
# the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift test --no-parallel "$@"
CODEBOOK_BIN="$PWD/.build/debug/codebook" python3 -m pytest -q Tests/python
