#!/bin/sh
# portlab-viz against tshark on the same capture, alternating in one run so both
# meet the same machine load: `tshark -r FILE` (stdout to /dev/null: every packet
# dissected and its summary line printed) against portlab-viz's load of the whole
# file (bench_viz open: the loader and the timeline, no window; and, when xvfb-run
# is there, portlab-viz FILE --bench-open: the real window under Xvfb).
# Prints each round, then min / median / max of the ratios (portlab / tshark).
#
#   bench/viz_vs_tshark.sh BIN_DIR FILE [ROUNDS]
#   e.g. bench/viz_vs_tshark.sh build-rel/bin /tmp/cap-1m.pcap 5
# Every command is bounded by timeout(1). See bench/RESULTS.md, "portlab-viz".
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 BIN_DIR FILE [ROUNDS]" >&2
    exit 2
fi
bin=$1
file=$2
rounds=${3:-5}
command -v tshark >/dev/null || { echo "$0: tshark is not installed" >&2; exit 2; }
window=0
command -v xvfb-run >/dev/null && window=1

now() { date +%s.%N; }
# Wall seconds of a command, its output thrown away.
timed() {
    start=$(now)
    timeout 300 "$@" >/dev/null 2>&1 || { echo "$0: failed: $*" >&2; exit 1; }
    echo "$(now) - $start" | bc -l
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
i=1
while [ "$i" -le "$rounds" ]; do
    t_tshark=$(timed tshark -r "$file")
    t_open=$(timed "$bin/bench_viz" open "$file" 1)
    if [ "$window" = 1 ]; then
        out=$(timeout 300 xvfb-run -a -s '-screen 0 1920x1200x24' "$bin/portlab-viz" "$file" --bench-open 2>/dev/null)
        t_window=$(echo "$out" | sed -n 's/^whole file loaded: \([0-9.]*\) ms.*/\1/p')
        t_window=$(echo "$t_window / 1000" | bc -l)
        first=$(echo "$out" | sed -n 's/^first frame with events: \([0-9.]*\) ms.*/\1/p')
    else
        t_window=0
        first=-1
    fi
    printf 'round %d: tshark %.2f s, bench_viz open %.2f s (%.2fx), portlab-viz --bench-open %.2f s (%.2fx), first frame %s ms\n' \
        "$i" "$t_tshark" "$t_open" "$(echo "$t_open / $t_tshark" | bc -l)" "$t_window" "$(echo "$t_window / $t_tshark" | bc -l)" "$first"
    echo "$(echo "$t_open / $t_tshark" | bc -l) $(echo "$t_window / $t_tshark" | bc -l)" >> "$results"
    i=$((i + 1))
done
summary() {  # column number, name
    sort -g -k"$1","$1" "$results" | awk -v c="$1" -v name="$2" '{ v[NR] = $c } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s / tshark: min %.2fx, median %.2fx, max %.2fx (%d rounds)\n", name, v[1], m, v[NR], NR }'
}
summary 1 "bench_viz open"
[ "$window" = 1 ] && summary 2 "portlab-viz --bench-open"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
