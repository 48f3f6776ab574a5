#!/usr/bin/env bash
# Reports for one machine from the HEAD commit's asv results alone, into reports/<machine>/
# (the committed references stay small and self-contained).
#   tools/commit_report.sh PYTHON MACHINE
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1 machine=$2
only_head=$(mktemp -d)
trap 'rm -rf "$only_head"' EXIT
# The same layout as .asv/: results/ and, beside it, environments/ (tools/record_environment.py)
mkdir -p "$only_head/results/$machine" "$only_head/environments/$machine"
cp .asv/results/benchmarks.json "$only_head/results/"
cp ".asv/results/$machine/machine.json" "$only_head/results/$machine/"
# asv names a results file by the commit's first 8 digits (--short=8 may give more); a
# file of another commit with those 8 is left out by the full hash it holds
head=$(git rev-parse HEAD) copied=0
for file in ".asv/results/$machine/${head:0:8}"-*.json; do
    if [ -f "$file" ] && grep -q "$head" "$file"; then
        cp "$file" "$only_head/results/$machine/" && copied=1
    fi
done
if [ "$copied" = 0 ]; then
    echo "commit_report: no asv results of HEAD $head on $machine in .asv/results" >&2
    exit 1
fi
record=".asv/environments/$machine/$head.json"
if [ -f "$record" ]; then cp "$record" "$only_head/environments/$machine/"; fi
calibration=".asv/environments/$machine/calibration.json"   # tools/calibrate.py
if [ -f "$calibration" ]; then cp "$calibration" "$only_head/environments/$machine/"; fi
"$py" -m scipy_layers.reports --results "$only_head/results" --output "reports/$machine"
