#!/bin/sh
# portlab's simulator and ns-3 on one workload, alternating in one run (issue 13):
# bench_sim_scale (bare and default options) then ns3_short_connections, ROUNDS times
# for each size, then min / median / max over the rounds of: ns-3 / portlab-default
# (CPU and wall us per connection, peak RSS), default / bare (CPU us per connection),
# and the last thousand connections' CPU cost over the first thousand's for all three.
# Prints the load average and the CPU model first; every line is also kept in LOG.
#
#   cmake -S . -B /work/build-simscale-rel -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG -g"
#   cmake --build /work/build-simscale-rel --target bench_sim_scale ns3_short_connections
#   bench/run_sim_vs_ns3.sh /work/build-simscale-rel/bin 3 "1000 10000"
#
# ns3_short_connections needs Debian's libns3-dev (apt-get install -y libns3-dev).
set -eu
BIN=${1:?usage: run_sim_vs_ns3.sh BIN_DIR [ROUNDS] [SIZES]}
ROUNDS=${2:-3}
SIZES=${3:-1000 10000}
LOG=${LOG:-/tmp/run_sim_vs_ns3.log}
for program in bench_sim_scale ns3_short_connections; do
    [ -x "$BIN/$program" ] || { echo "run_sim_vs_ns3.sh: no $BIN/$program (build it first)" >&2; exit 2; }
done

: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }
say "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) ($(nproc) cores)"
say "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $SIZES; do
    round=1
    while [ "$round" -le "$ROUNDS" ]; do
        say "round=$round $(nice -n 10 "$BIN/bench_sim_scale" --options both "$n" | tr '\n' ' ')"
        say "round=$round $(nice -n 10 "$BIN/ns3_short_connections" "$n")"
        round=$((round + 1))
    done
done
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# One line per (size, measure): min / median / max over the rounds.
awk '
function field(line, key,   i, n, parts) {
    n = split(line, parts, " ")
    for (i = 1; i <= n; ++i) if (index(parts[i], key "=") == 1) return substr(parts[i], length(key) + 2)
    return ""
}
function summary(name, values, count,   i, j, t, sorted) {
    for (i = 1; i <= count; ++i) sorted[i] = values[i]
    for (i = 1; i <= count; ++i) for (j = i + 1; j <= count; ++j) if (sorted[j] < sorted[i]) { t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t }
    printf "%s: min %.2f  median %.2f  max %.2f  (%d rounds)\n", name, sorted[1], (count % 2 ? sorted[(count + 1) / 2] : (sorted[count / 2] + sorted[count / 2 + 1]) / 2), sorted[count], count
}
/^round=/ {
    line = $0
    # a bench_sim_scale line holds both option sets: split it at the second "options="
    rest = substr(line, index(line, " options=") + 1)
    at = index(rest, " options=")
    if (field(line, "options") == "ns-3") {
        n = field(line, "conns"); k = ++rounds[n]
        ns3_cpu[n, k] = field(line, "cpu_us_per_conn"); ns3_rss[n, k] = field(line, "peak_rss_mib")
        ratio_cpu[n, k] = ns3_cpu[n, k] / default_cpu[n, k]
        ratio_wall[n, k] = field(line, "us_per_conn") / default_wall[n, k]
        ratio_rss[n, k] = ns3_rss[n, k] / default_rss[n, k]
        ns3_flat[n, k] = field(line, "cpu_last_over_first")
        sizes[n] = 1
    } else {
        bare = substr(rest, 1, at); dflt = substr(rest, at + 1)
        n = field(bare, "conns"); k = rounds[n] + 1
        default_cpu[n, k] = field(dflt, "cpu_us_per_conn"); default_wall[n, k] = field(dflt, "us_per_conn")
        default_rss[n, k] = field(dflt, "peak_rss_mib")
        over_bare[n, k] = default_cpu[n, k] / field(bare, "cpu_us_per_conn")
        bare_flat[n, k] = field(bare, "cpu_last_over_first"); default_flat[n, k] = field(dflt, "cpu_last_over_first")
    }
}
END {
    for (n in sizes) {
        count = rounds[n]
        for (k = 1; k <= count; ++k) {
            a[k] = ratio_cpu[n, k]; b[k] = ratio_wall[n, k]; c[k] = ratio_rss[n, k]; d[k] = over_bare[n, k]
            e[k] = bare_flat[n, k]; f[k] = default_flat[n, k]; g[k] = ns3_flat[n, k]
        }
        summary(n " connections, ns-3 / portlab default, CPU us per connection", a, count)
        summary(n " connections, ns-3 / portlab default, wall us per connection", b, count)
        summary(n " connections, ns-3 / portlab default, peak RSS", c, count)
        summary(n " connections, portlab default / bare, CPU us per connection", d, count)
        summary(n " connections, last / first thousand (CPU), portlab bare", e, count)
        summary(n " connections, last / first thousand (CPU), portlab default", f, count)
        summary(n " connections, last / first thousand (CPU), ns-3", g, count)
    }
}' "$LOG" | tee -a "$LOG"
