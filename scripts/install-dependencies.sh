#!/usr/bin/env bash
# Installs what Codebook needs and this machine lacks: Debian's -dev packages for libzmq,
# RocksDB, OpenBLAS (and LAPACKE, LAPACK's C interface, for PCA), VLFeat (SIFT for `codebook extract`, and the reference of the tests and
# benchmark), libjpeg-turbo and libpng (image decoding) and pkg-config, and the Python
# packages of the protocol tests (Tests/python/requirements.txt: pyzmq, numpy, pytest,
# rocksdict, prometheus_client). Checks first that Swift 6.2 or later is on PATH (it installs
# no toolchain). Safe to run again: it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Package.swift's tools version; an older swift fails later with a less direct message.
required_swift=6.2
if ! command -v swift >/dev/null; then
    echo "error: swift is not on PATH; Codebook needs Swift $required_swift or later (https://www.swift.org/install/)" >&2
    exit 1
fi
swift_version=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
if [[ -n $swift_version ]] && ! printf '%s\n%s\n' "$required_swift" "$swift_version" | sort -V -C; then
    echo "error: the swift on PATH is $swift_version; Codebook needs Swift $required_swift or later (https://www.swift.org/install/)" >&2
    exit 1
fi

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
