#!/usr/bin/env bash
# Builds the test suite for aarch64 (Raspberry Pi 4/5 64-bit, Jetson) with
# Debian's cross compiler and runs the parts that do not spawn the camtrapd
# binary under qemu-user: unit tests, decoding, the model bundle checks,
# the golden outputs (tract's ARM kernels must match the x86 goldens within
# the tolerance of tests/golden.rs) and the watchdog test.
# The tests that start the daemon (cli, mqtt, open_set) need binfmt_misc to
# exec an aarch64 child process and are run on x86_64 only.
#
#   sudo apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#   rustup target add aarch64-unknown-linux-gnu
#   scripts/test-aarch64.sh          # first build ≈ 18 min on 2 cores, tests ≈ 3 min
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
cargo test --locked --target aarch64-unknown-linux-gnu \
  --lib --test golden --test model_bundle --test decode_colour_types --test watchdog
