#!/usr/bin/env bash
# Builds camtrapd's Debian packages with cargo-deb into target/debian/.
#
#   scripts/build-deb.sh                # amd64 and arm64
#   scripts/build-deb.sh arm64 armhf    # Raspberry Pi 4/5 / Jetson, 32-bit Raspberry Pi OS
#
# Needs: cargo install cargo-deb; for arm64/armhf Debian's cross compilers
#   sudo apt-get install cmake gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
#   rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
# (the linkers are set in .cargo/config.toml). Each architecture is a release
# build: about 8-10 min on 2 cores the first time.
# The package contents are described in Cargo.toml, [package.metadata.deb],
# and docs/deployment.md, "Debian package".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "cargo-deb is not installed: cargo install cargo-deb" >&2
  exit 1
fi
mkdir -p target/debian
for arch in ${*:-amd64 arm64}; do
  case "$arch" in
    amd64) target=() ;;
    arm64) target=(--target aarch64-unknown-linux-gnu) ;;
    armhf) target=(--target armv7-unknown-linux-gnueabihf) ;;
    *) echo "unknown architecture $arch (amd64, arm64 or armhf)" >&2; exit 2 ;;
  esac
  echo "== $arch"
  cargo deb "${target[@]}" -o target/debian/ -- --locked
done
ls -l target/debian/*.deb
