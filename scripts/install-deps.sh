#!/usr/bin/env bash
# Installs every Debian package qplug needs to build, test and benchmark. Run as root (or with sudo).
# Idempotent: packages already present are left alone, so CI and repeat runs stay fast.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libtorch-dev          # LibTorch 1.13 (CPU)
  libopenblas-dev       # without it LibTorch falls back to the ~10x slower reference BLAS
  libboost-dev libboost-filesystem-dev   # Boost.DLL (header-only) needs Boost.Filesystem
  libyaml-cpp-dev
  libsentencepiece-dev
  googletest libgtest-dev libgmock-dev
  libsimde-dev          # tests: runs the AVX-512 kernels' code on processors without AVX-512
  libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
