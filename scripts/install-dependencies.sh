#!/usr/bin/env bash
# Installs what Codebook needs and this machine lacks: Debian's -dev packages for libzmq,
# RocksDB, OpenBLAS and VLFeat (the reference of the tests and benchmark) and pkg-config.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail

missing=()
for package in pkg-config libzmq3-dev librocksdb-dev libopenblas-dev libvlfeat-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
    echo "error: swift is not on PATH; Codebook needs Swift 6.0 or later (https://www.swift.org/install/)" >&2
    exit 1
fi
