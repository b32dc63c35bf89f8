#!/usr/bin/env bash
# CPU time per hour of a static scene, with and without motion gating.
#
# Runs `camtrapd run` on folders of N copies of one empty camera-trap frame
# (../shared/data/camera_trap/empty/empty/speciesnet_blank.jpg, a 2048x1536
# Reconyx HC550 photo, as the trap stores it), unpaced, once with
# [motion] enabled and once without, for 10 and for 10+N frames, and takes
# the difference of user+sys CPU time (so start-up, model load and the
# first frames cancel out) as the cost of N steady-state frames.
# Per hour at 1 frame/s: without gating 3600 classified frames; with gating
# a static scene is classified only by the heartbeat (every heartbeat_secs
# = 10 s: 360 frames, each gated and then classified) and the other 3240
# frames cost what the gate reads of them only.
#
#   scripts/gating_cpu.sh [CAMTRAPD] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/camtrapd}
N=${2:-100}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cp ../shared/data/camera_trap/empty/empty/speciesnet_blank.jpg "$W/frame.jpg"
mk() { # mk DIR COUNT
  mkdir -p "$1"; for i in $(seq -w 1 "$2"); do cp "$W/frame.jpg" "$1/f$i.jpg"; done; }
mk "$W/a" 10; mk "$W/b" $((N + 10))
cpu() { # cpu FRAMES_DIR MOTION -> user+sys seconds
  cat > "$W/c.toml" <<TOML
camera_id = "bench"
[source]
kind = "files"
path = "$1"
[model]
path = "$PWD/models/efficientnet-lite0-imagenet"
[motion]
enabled = $2
[[sinks]]
kind = "stdout"
[stats]
interval_secs = 0
TOML
  /usr/bin/time -f "%U %S" -o "$W/t" "$BIN" run --config "$W/c.toml" >/dev/null 2>"$W/log"
  awk '{ printf "%.3f", $1 + $2 }' "$W/t"
}
for m in false true; do
  a=$(cpu "$W/a" $m); b=$(cpu "$W/b" $m)
  per=$(echo "($b - $a) / $N" | bc -l)
  echo "motion=$m: $a s CPU for 10 frames, $b s for $((N + 10)): $(printf %.2f "$(echo "$per * 1000" | bc -l)") ms CPU per frame"
  eval "per_$m=$per"
done
without=$(echo "3600 * $per_false" | bc -l)
# A heartbeat frame is gated first, then classified. (With
# CAMTRAPD_GATE_ON_RGB=1 the gate's whole decode is used for the model too,
# so this counts that frame's decode twice: an upper bound.)
with=$(echo "360 * ($per_false + $per_true) + 3240 * $per_true" | bc -l)
printf 'static scene at 1 frame/s, CPU time per hour: without gating %.0f s, with gating %.0f s (heartbeat every 10 s): %.1fx less\n' \
  "$without" "$with" "$(echo "$without / $with" | bc -l)"
