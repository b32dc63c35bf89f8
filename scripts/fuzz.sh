#!/usr/bin/env bash
# Fuzzes camtrapd's parsers of outside input with cargo-fuzz (libFuzzer,
# AddressSanitizer; needs the nightly toolchain):
#   decode    frame decoding, camtrapd::decode::decode_bytes (JPEG marker walk,
#             size limits, every image format we accept)
#   config    camtrapd.toml, camtrapd::config::Config::from_str
#   manifest  model.toml, camtrapd::model::manifest::Manifest::from_str
#   mjpeg     camera frames: MJPEG Huffman-table repair, truncation check and
#             decode (camtrapd::source::v4l2::mjpeg::decode_mjpeg)
# Seed corpora come from the repository's own test inputs (tests/fixtures,
# including the bad-input corpus, the example configs and the bundled
# manifests), plus for decode and mjpeg the inputs that broke something
# before ($CAMTRAPD_DATA or ../shared/data, regressions/, when present);
# what the fuzzer finds goes to fuzz/corpus/ (not committed) and
# crashes to fuzz/artifacts/<target>/ (turn each into a regression test).
#
#   cargo install cargo-fuzz && rustup toolchain install nightly
#   scripts/fuzz.sh                      # 600 s per target, all four
#   scripts/fuzz.sh 60 decode            # one target, one minute
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=${*:-decode config manifest mjpeg}
for t in $targets; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus"
  case "$t" in
    decode) cp tests/fixtures/*.* tests/fixtures/bad/* "$corpus/"
      # Inputs that broke something before (not in the repository: the full data sets' regressions/).
      regressions="${CAMTRAPD_DATA:-../shared/data}/regressions"
      if [ -d "$regressions" ]; then cp "$regressions"/* "$corpus/"; fi ;;
    mjpeg) cp tests/fixtures/*.jpg tests/fixtures/bad/*.jpg "$corpus/"
      regressions="${CAMTRAPD_DATA:-../shared/data}/regressions"
      if [ -d "$regressions" ]; then cp "$regressions"/*.jpg "$corpus/"; fi ;;
    config) cp examples/*.toml packaging/deb/camtrapd.toml "$corpus/" ;;
    manifest)
      for f in models/*/model.toml tests/fixtures/models/*/model.toml; do
        cp "$f" "$corpus/$(echo "$f" | tr / _)"
      done ;;
    *) echo "unknown target $t (decode, config, manifest, mjpeg)" >&2; exit 2 ;;
  esac
  echo "== $t: $secs s"
  # CARGO_TARGET_DIR, when set, is where the fuzz build goes.
  cargo +nightly fuzz run -O ${CARGO_TARGET_DIR:+--target-dir "$CARGO_TARGET_DIR"} "$t" "$corpus" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1
done
