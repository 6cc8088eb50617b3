#!/bin/sh
# Two builds of the visualizer's loading on the same trace, alternating in one run so
# both meet the same machine load (the machine is shared): which went first changes
# every round. Per build and round: `bench_viz open TRACE 1` (CPU of every thread by
# getrusage, wall, first batch) under /usr/bin/time for the peak RSS, and
# `bench_viz seek TRACE 1000` (median and p99 of forwards, backwards and one step
# back). With xvfb-run: `portlab-viz TRACE --bench-open` (first frame with events)
# and `portlab-viz FRAMES_TRACE --at AT --bench-frames 300` (frame time, 1600x1000).
# Prints one line per build and round, then min / median / max per build.
#
#   bench/viz_before_after.sh OLD_BIN_DIR NEW_BIN_DIR TRACE [ROUNDS] [FRAMES_TRACE AT]
#   e.g. bench/viz_before_after.sh build-old/bin build/bin /tmp/viz-1m.jsonl 5 /tmp/viz-10k.jsonl 130004
# Every command is bounded by timeout(1). See bench/RESULTS.md, "portlab-viz".
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 OLD_BIN_DIR NEW_BIN_DIR TRACE [ROUNDS] [FRAMES_TRACE AT]" >&2
    exit 2
fi
old=$1
new=$2
trace=$3
rounds=${4:-5}
frames_trace=${5:-}
at=${6:-0}
window=0
command -v xvfb-run >/dev/null && window=1
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# The value after `label` in a line of `text` (the first number that follows it).
after() { echo "$1" | sed -n "s/.*$2 \([0-9.]*\).*/\1/p" | head -n 1; }

# One build, one round: appends "name cpu_ms wall_ms rss_mb first_batch_ms seek_fwd seek_back step_back seek_p99 first_frame frame_ui frame_all".
measure() {
    name=$1
    bin=$2
    open=$(timeout 300 /usr/bin/time -f 'peak-rss-kb %M' "$bin/bench_viz" open "$trace" 1 2>&1) || { echo "$0: failed: $bin/bench_viz open" >&2; exit 1; }
    seek=$(timeout 300 "$bin/bench_viz" seek "$trace" 1000) || { echo "$0: failed: $bin/bench_viz seek" >&2; exit 1; }
    first=-1 ui=-1 frame=-1
    if [ "$window" = 1 ]; then
        out=$(timeout 300 xvfb-run -a -s '-screen 0 1920x1200x24' "$bin/portlab-viz" "$trace" --bench-open 2>/dev/null) || true
        first=$(after "$out" "first frame with events:")
        if [ -n "$frames_trace" ]; then
            out=$(timeout 300 xvfb-run -a -s '-screen 0 1920x1200x24' "$bin/portlab-viz" "$frames_trace" --at "$at" --bench-frames 300 2>/dev/null) || true
            ui=$(echo "$out" | sed -n 's/^UI build ms.*median \([0-9.]*\).*/\1/p')
            frame=$(echo "$out" | sed -n 's/^frame ms.*median \([0-9.]*\).*/\1/p')
        fi
    fi
    line="$name $(after "$open" "cpu") $(after "$open" "all in") $(echo "$(after "$open" "peak-rss-kb") / 1024" | bc) \
$(after "$open" "first batch") $(echo "$seek" | sed -n 's/^seek forwards.*median \([0-9.]*\).*/\1/p') \
$(echo "$seek" | sed -n 's/^seek backwards.*median \([0-9.]*\).*/\1/p') $(echo "$seek" | sed -n 's/^one step back.*median \([0-9.]*\).*/\1/p') \
$(echo "$seek" | sed -n 's/^seek forwards.*p99 \([0-9.]*\).*/\1/p') ${first:--1} ${ui:--1} ${frame:--1}"
    echo "$line" >> "$results"
    echo "$line (load $(cut -d' ' -f1 /proc/loadavg))"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "columns: build cpu_ms wall_ms peak_rss_mb first_batch_ms seek_fwd_median_ms seek_back_median_ms step_back_median_ms seek_fwd_p99_ms first_frame_ms frame_ui_median_ms frame_median_ms"
i=1
while [ "$i" -le "$rounds" ]; do
    if [ $((i % 2)) = 1 ]; then
        measure old "$old"
        measure new "$new"
    else
        measure new "$new"
        measure old "$old"
    fi
    i=$((i + 1))
done
# min / median / max of each column, per build.
for name in old new; do
    col=2
    for what in cpu_ms wall_ms peak_rss_mb first_batch_ms seek_fwd_median_ms seek_back_median_ms step_back_median_ms seek_fwd_p99_ms first_frame_ms frame_ui_median_ms frame_median_ms; do
        grep "^$name " "$results" | sort -g -k"$col","$col" | awk -v c="$col" -v name="$name" -v what="$what" '{ v[NR] = $c } END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%s %-20s min %s  median %s  max %s\n", name, what, v[1], m, v[NR] }'
        col=$((col + 1))
    done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
