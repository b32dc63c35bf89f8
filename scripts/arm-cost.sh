#!/usr/bin/env bash
# Instructions per frame on a Raspberry Pi's cores, without one: builds
# camtrapd for aarch64 (or armv7), runs `camtrapd bench --insn-markers`
# under qemu-user with the insnmark plugin (scripts/arm-cost/insnmark.c) for
# each emulated core and model bundle, and prints per stage (decode, YUYV
# conversion, motion gate, resize + normalise, inference, decision, sink) the
# guest instructions per frame, the pipeline's share of inference,
# instructions per multiply-accumulate against the SIMD bound, and (with
# --ops) where inference goes per tract operator.
#
#   sudo apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross libclang-dev cmake
#   rustup target add aarch64-unknown-linux-gnu
#   scripts/arm-cost.sh                                   # fp32 and the shipped model, A72 and A76
#   scripts/arm-cost.sh --ops target/int8-qop-pw-pt       # plus another bundle, per operator
#   scripts/arm-cost.sh --cpu cortex-a76 --frames 4 DIR...
#   scripts/arm-cost.sh --arch armv7                      # 32-bit Raspberry Pi OS (qemu-arm -cpu cortex-a15: NEON, VFPv4;
#                                                         #   needs gcc-arm-linux-gnueabihf libc6-dev-armhf-cross and the armv7 target)
#
# Cores: cortex-a72 is the Raspberry Pi 4's (NEON, no dot product),
# cortex-a76 the Pi 5's (adds sdot/udot, which tract's int8 kernel uses),
# cortex-a57 the Jetson Nano's. qemu-user counts instructions exactly and
# repeatably, but it is a proxy: it does not see caches, memory bandwidth or
# the latency of each instruction, so a form that executes fewer
# instructions can still be slower on the real core (docs/benchmarks.md).
# Under qemu, /proc/cpuinfo is the host's, so tract's core-specific tuning
# (Cortex-A53/A55 models) is not applied; on aarch64 the dot-product kernel
# is chosen from the emulated core's HWCAP, as on the device. On armv7 tract
# looks for NEON in /proc/cpuinfo only, so the script tells it the core has
# NEON (TRACT_CPU_ARM32_NEON=1), as a Pi's own cpuinfo would.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=aarch64
cpus=""
frames=3
ops=""
models=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --cpu) cpus="${2//,/ }"; shift 2 ;;
    --frames) frames="$2"; shift 2 ;;
    --ops) ops="--ops"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 64 ;;
    *) models+=("$1"); shift ;;
  esac
done
if [ "${#models[@]}" -eq 0 ]; then
  models=(models/efficientnet-lite0-imagenet-fp32 models/efficientnet-lite0-imagenet)
fi
case "$arch" in
  aarch64)
    target=aarch64-unknown-linux-gnu; qemu=qemu-aarch64; sysroot=/usr/aarch64-linux-gnu
    cpus="${cpus:-cortex-a72 cortex-a76}" ;;
  armv7)
    target=armv7-unknown-linux-gnueabihf; qemu=qemu-arm; sysroot=/usr/arm-linux-gnueabihf
    export TRACT_CPU_ARM32_NEON=1
    cpus="${cpus:-cortex-a15}" ;;
  *) echo "--arch is aarch64 or armv7" >&2; exit 64 ;;
esac
for tool in "$qemu" cc python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found: see the apt-get line at the top of $0" >&2; exit 69; }
done

out="${CARGO_TARGET_DIR:-target}/arm-cost"
mkdir -p "$out"
cc -O2 -shared -fPIC -fvisibility=hidden -o "$out/libinsnmark.so" scripts/arm-cost/insnmark.c
echo "== building camtrapd for $target (release)" >&2
cargo build --release --locked --target "$target" >&2
bin="${CARGO_TARGET_DIR:-target}/$target/release/camtrapd"
photo=examples/photos/elephant/$(ls examples/photos/elephant | head -n 1)

runs=()
for cpu in $cpus; do
  for m in "${models[@]}"; do
    name="$(basename "$m")"
    tag="$out/$name.$cpu"
    echo "== $cpu: $m" >&2
    if ! "$qemu" -cpu "$cpu" -L "$sysroot" -plugin "$out/libinsnmark.so" -d plugin \
        "$bin" bench --insn-markers -m "$m" -n "$frames" --warmup 1 "$photo" \
        >"$tag.json" 2>"$tag.txt"; then
      echo "camtrapd bench failed under $qemu -cpu $cpu for $m:" >&2
      tail -n 20 "$tag.txt" >&2
      exit 1
    fi
    runs+=("$name@$cpu=$tag.json:$tag.txt")
  done
done
python3 scripts/arm-cost/table.py $ops "${runs[@]}"
