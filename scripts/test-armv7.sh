#!/usr/bin/env bash
# Builds the test suite for armv7 (32-bit Raspberry Pi OS:
# armv7-unknown-linux-gnueabihf) with Debian's cross compiler and runs it
# under qemu-user, as scripts/test-aarch64.sh does for aarch64: the unit
# tests, the model golden outputs (tract's 32-bit ARM kernels must match the
# x86 goldens within the tolerance of tests/golden.rs), and the tests that
# start the daemon, which run the armv7 camtrapd binary through qemu-arm
# (CAMTRAPD_TEST_RUNNER, read by tests/common/mod.rs).
# Tests that bound a time wait 10× longer under the emulator
# (CAMTRAPD_TEST_SLOWDOWN to change it).
#
#   sudo apt-get install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user libclang-dev cmake mosquitto
#   rustup target add armv7-unknown-linux-gnueabihf
#   scripts/test-armv7.sh                    # everything (the test build alone ≈ 30 min on 2 cores)
#   scripts/test-armv7.sh --lib              # or any `cargo test` selection
#
# qemu is an emulator: timings under it say nothing about a real Pi.
set -euo pipefail
cd "$(dirname "$0")/.."
# -cpu cortex-a15: an ARMv7-A core with NEON and VFPv4, what the Pi 2's and
# (in 32-bit mode) the Pi 3/4's cores offer a 32-bit OS.
runner="qemu-arm -cpu cortex-a15 -L /usr/arm-linux-gnueabihf"
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="$runner"
export CAMTRAPD_TEST_RUNNER="$runner"
if [ "$#" -eq 0 ]; then
  set -- --tests
fi
cargo test --locked --no-fail-fast --target armv7-unknown-linux-gnueabihf "$@"
