#!/usr/bin/env bash
# Counts the instructions the dispatchers of one `bench deliver` run
# execute, under callgrind: a measure that repeats within a fraction of a
# per cent whatever else the machine does, where deliveries per second on
# this VM move by half from one run to the next (docs/benchmarks.md,
# "Comparing two builds").
#
#   bench/instructions.sh [scale]        # default 0.05: 10,000 deliveries
#
# The bench starts target/release/dispatcher-service; for the run that path
# becomes a script that starts the real binary under valgrind (in the
# background, so that the bench's kill at the end reaches the script, and
# valgrind gets a SIGTERM here and exits cleanly, writing its profile). The
# binary is put back on exit. Profiles are left in $OUT (printed) for
# callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-0.05}"
target="${CARGO_TARGET_DIR:-target}"
release="$target/release"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --workspace --quiet

OUT="$(mktemp -d /tmp/instructions.XXXXXX)"
real="$OUT/dispatcher-service"
cp "$release/dispatcher-service" "$real"
restore() { cp "$real" "$release/dispatcher-service"; }
trap restore EXIT
cat > "$release/dispatcher-service" <<EOF
#!/usr/bin/env bash
valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.%p.out $real "\$@" &
wait \$!
EOF
chmod +x "$release/dispatcher-service"

"$release/bench" deliver --scale "$scale" > "$OUT/bench.txt" 2>&1 || {
    cat "$OUT/bench.txt" >&2
    exit 1
}
pkill -TERM -f "callgrind-out-file=$OUT" || true
for _ in $(seq 1 120); do
    pgrep -f "callgrind-out-file=$OUT" >/dev/null || break
    sleep 1
done

deliveries=$(awk -F'|' '/^\| (from a backlog|while publishing)/ { n += $3 } END { print n }' "$OUT/bench.txt")
echo "bench deliver --scale $scale: $deliveries deliveries; profiles in $OUT"
for profile in "$OUT"/callgrind.*.out; do
    total=$(awk '/^summary:/ { print $2 }' "$profile")
    echo "$(basename "$profile"): $total instructions"
done
