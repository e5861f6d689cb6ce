#!/usr/bin/env bash
# The embedded default: installs what is missing, builds in release mode, fetches real
# photographs into demo/photographs (scripts/fetch-photographs.sh; skipped if pip cannot get
# them), and runs `codebook demo`: SIFT of the photographs, or a synthetic corpus without
# them → k-means and GMM → VLAD and Fisher vectors, all in ./demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dependencies.sh
swift build -c release --product codebook
scripts/fetch-photographs.sh demo/photographs \
    || echo "no photographs could be fetched: the demo starts from a synthetic corpus" >&2
exec .build/release/codebook demo "$@"
