#!/usr/bin/env bash
# Installs the Debian packages flashneox needs to build and test. Idempotent:
# does nothing when they are all present. Runs apt-get as root or through sudo.
# --aarch64: instead, what the aarch64 cross build and its tests need (the
# cross compiler, qemu-user, and the arm64 libraries through multiarch).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libutf8proc-dev libboost1.81-dev libmimalloc-dev
  clang libclang-rt-14-dev
  chromium chromium-driver
  python3 python3-venv python3-dev
  openmpi-bin libopenmpi-dev iproute2
)

arm64=()
if [ "${1:-}" = "--aarch64" ]; then
  packages=(g++-aarch64-linux-gnu qemu-user file)
  arm64=(libutf8proc-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64 libstdc++6:arm64)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${arm64[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#arm64[@]} -gt 0 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
