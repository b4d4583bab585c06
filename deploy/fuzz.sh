#!/usr/bin/env bash
# Runs every coverage-guided fuzz target in fuzz/ (cargo fuzz, libFuzzer)
# for SECONDS each (default 60), starting from the committed corpus
# (fuzz/corpus/<target>.tar.gz, minimized, plus the hand-written inputs in
# fuzz/seeds/<target>/), and fails on any crash, panic, timeout or
# out-of-memory. The corpus grows in a scratch copy, so the run leaves the
# clone as it was; with FUZZ_SAVE_CORPUS=1 the grown corpus is minimized
# and written back to the archives.
#
#   ./deploy/fuzz.sh                       # the short run of the test command
#   FUZZ_SAVE_CORPUS=1 ./deploy/fuzz.sh 1200   # the long run (docs/reliability.md)
#
# Targets run FUZZ_JOBS at a time (default: one per core); libFuzzer is
# single-threaded, so each still gets a whole core for its SECONDS.
#
# Targets are built without a sanitizer (`-s none`): the code is safe
# Rust, and what fuzzing finds here is panics, hangs and broken
# properties, which need no sanitizer; the build is then half as long.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
jobs="${FUZZ_JOBS:-$(nproc)}"
version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $version" ]; then
  echo "fuzz: installing cargo-fuzz $version"
  cargo install cargo-fuzz --version "$version" --locked --quiet
fi
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cd fuzz
targets=$(cargo fuzz list)
cargo fuzz build -s none --target-dir "$target_dir"
fuzz_one() {
  local target="$1" log="$scratch/$1.log"
  mkdir -p "$scratch/$target" "$scratch/artifacts/$target"
  [ -f "corpus/$target.tar.gz" ] && tar -xzf "corpus/$target.tar.gz" -C "$scratch/$target"
  [ -d "seeds/$target" ] && cp "seeds/$target/." -r "$scratch/$target/"
  if ! cargo fuzz run "$target" -s none --target-dir "$target_dir" "$scratch/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$scratch/artifacts/$target/" >"$log" 2>&1; then
    touch "$scratch/$target.failed"
    return
  fi
  if [ "${FUZZ_SAVE_CORPUS:-0}" = 1 ]; then
    cargo fuzz cmin "$target" "$scratch/$target" -s none --target-dir "$target_dir" -- -rss_limit_mb=2048 >/dev/null 2>&1
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$scratch/$target" . \
      | gzip -n -9 >"corpus/$target.tar.gz"
  fi
}

running=0
for target in $targets; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait

failed=0
printf '%-16s %12s %8s %s\n' target executions seconds corpus
for target in $targets; do
  if [ -e "$scratch/$target.failed" ]; then
    failed=1
    tail -40 "$scratch/$target.log"
    for artifact in "$scratch/artifacts/$target"/*; do
      echo "fuzz: $target failed on this input:"
      cargo fuzz fmt "$target" "$artifact" -s none --target-dir "$target_dir" 2>/dev/null || od -c "$artifact" | head -20
    done
    continue
  fi
  runs="$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$scratch/$target.log")"
  printf '%-16s %12s %8s %s\n' "$target" ${runs:-? ?} "$(ls "$scratch/$target" | wc -l) inputs"
done
[ "$failed" = 0 ] || exit 1
echo "fuzz: every target ran ${seconds} s without a crash, panic, timeout or out-of-memory"
