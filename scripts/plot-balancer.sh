#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Plot the balancer's CSV (dmm-balancer --csv) with gnuplot:
#   scripts/plot-balancer.sh CSV PNG [BUDGET_MIB]
# One line per guest: its size (solid) and its target (dashed), in MiB,
# over time; the budget as a horizontal line.
set -euo pipefail
csv=${1:?usage: plot-balancer.sh CSV PNG [BUDGET_MIB]}
png=${2:?usage: plot-balancer.sh CSV PNG [BUDGET_MIB]}
budget=${3:-0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# one data file per guest: time, size MiB, target MiB, available MiB
guests=$(tail -n +2 "$csv" | cut -d, -f2 | sort -u)
[ -n "$guests" ] || { echo "plot-balancer: no data in $csv" >&2; exit 1; }
plot=""
for g in $guests; do
	awk -F, -v g="$g" 'NR > 1 && $2 == g && $9 == 1 {
		printf "%s %.0f %.0f %.0f\n", $1, $3 / 1048576, $5 / 1048576,
		       $7 / 1048576 }' "$csv" >"$tmp/$g.dat"
	plot="$plot \"$tmp/$g.dat\" using 1:2 with lines lw 2 title \"$g size\","
	plot="$plot \"$tmp/$g.dat\" using 1:3 with lines dt 2 title \"$g target\","
done
# the sum of the sizes, to compare with the budget
awk -F, 'NR > 1 && $9 == 1 { s[$1] += $3 } END {
	for (t in s) printf "%s %.0f\n", t, s[t] / 1048576 }' "$csv" |
	sort -n >"$tmp/sum.dat"
plot="$plot \"$tmp/sum.dat\" using 1:2 with lines lw 1 lc rgb \"gray\" title \"sum of sizes\""
if [ "$budget" != 0 ]; then
	plot="$plot, $budget with lines lw 2 lc rgb \"red\" title \"budget\""
fi
gnuplot <<GP
set terminal pngcairo size 1000,600 noenhanced
set output "$png"
set title "dmm-balancer: guest sizes over time"
set xlabel "seconds"
set ylabel "MiB"
set key outside right
set grid
plot $plot
GP
echo "plot-balancer: $png"
