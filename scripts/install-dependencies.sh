#!/usr/bin/env bash
# Installs what Codebook needs and this machine lacks: Debian's -dev packages for libzmq,
# RocksDB, OpenBLAS (and LAPACKE, LAPACK's C interface, for PCA), VLFeat (SIFT for `codebook extract`, and the reference of the tests and
# benchmark), libjpeg-turbo and libpng (image decoding) and pkg-config, and the Python
# packages of the protocol tests (pyzmq, numpy, pytest).
# Safe to run again: it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    echo "installing Debian packages: $*"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
for package in pkg-config libzmq3-dev librocksdb-dev libopenblas-dev liblapacke-dev libvlfeat-dev libjpeg62-turbo-dev libpng-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3 python3-pip)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"

if ! python3 -c "import zmq, numpy, pytest, rocksdict, prometheus_client" 2>/dev/null; then
    echo "installing Python packages: pyzmq numpy pytest rocksdict prometheus_client"
    python3 -m pip install -q -r Tests/python/requirements.txt \
        || python3 -m pip install -q --break-system-packages -r Tests/python/requirements.txt
fi

if ! command -v swift >/dev/null; then
    echo "error: swift is not on PATH; Codebook needs Swift 6.0 or later (https://www.swift.org/install/)" >&2
    exit 1
fi
