#!/usr/bin/env bash
# The dashboard's cost: CPU and memory of the daemon over the same 1 frame/s
# files source (the sample photos, looped), (a) without [http] and review
# capture, (b) with both and no client, (c) with both and a headless
# chromium on the status page (which reloads itself every 5 s).
#   scripts/dashboard_cost.sh [SECONDS]       # default 60 per case
# Needs a built binary (cargo build --release, or BIN=path/to/camtrapd)
# and, for (c), chromium.
# Prints one line per case: CPU % of one core (utime+stime over the
# window) and VmRSS / VmHWM at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
bin="${BIN:-${CARGO_TARGET_DIR:-target}/release/camtrapd}"
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 1; }
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
hz="$(getconf CLK_TCK)"

config() { # $1: with dashboard (1/0)
  cat >"$tmp/c.toml" <<EOF
camera_id = "cost"
[source]
kind = "files"
path = "$(pwd)/examples/photos"
fps = 1.0
loop = true
[model]
path = "$(pwd)/models/zoo12"
[[sinks]]
kind = "stdout"
[stats]
interval_secs = 60
EOF
  if [ "$1" = 1 ]; then
    cat >>"$tmp/c.toml" <<EOF
[review]
enabled = true
folder = "$tmp/review"
[http]
listen = "127.0.0.1:0"
EOF
  fi
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # $1: name, $2: dashboard, $3: browser
  config "$2"
  rm -rf "$tmp/review"
  RUST_LOG=info "$bin" run --config "$tmp/c.toml" >/dev/null 2>"$tmp/err" &
  local pid=$!
  pids+=("$pid")
  sleep 10 # model load and warm-up
  if [ "$3" = 1 ]; then
    local addr
    addr="$(grep -o 'dashboard on http://[0-9.:]*' "$tmp/err" | sed 's|dashboard on http://||')"
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --user-data-dir="$tmp/profile" --remote-debugging-port=0 "http://$addr/" >/dev/null 2>&1 &
    pids+=("$!")
    sleep 3
  fi
  local t0 t1
  t0="$(ticks "$pid")"
  sleep "$secs"
  t1="$(ticks "$pid")"
  local rss hwm
  rss="$(awk '/VmRSS/{print $2}' "/proc/$pid/status")"
  hwm="$(awk '/VmHWM/{print $2}' "/proc/$pid/status")"
  printf '%-34s CPU %5.1f %% of a core   RSS %6.1f MB   peak %6.1f MB\n' "$1" \
    "$(echo "($t1 - $t0) * 100 / $hz / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

echo "camtrapd over examples/photos at 1 frame/s, ${secs} s per case ($(nproc) cores)"
measure "no dashboard" 0 0
measure "dashboard + review, no client" 1 0
measure "dashboard + review, chromium on /" 1 1
