#!/usr/bin/env bash
# The embedded default: installs what is missing, builds in release mode, and runs
# `codebook demo` (synthetic corpus → k-means and GMM → VLAD and Fisher vectors in ./demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift build -c release --product codebook
exec .build/release/codebook demo "$@"
