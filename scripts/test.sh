#!/usr/bin/env bash
# The whole test suite: installs what is missing, then builds and runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
exec swift test "$@"
