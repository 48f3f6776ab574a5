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
cp ".asv/results/$machine/machine.json" ".asv/results/$machine/$(git rev-parse --short=8 HEAD)"-*.json \
    "$only_head/results/$machine/"
record=".asv/environments/$machine/$(git rev-parse HEAD).json"
if [ -f "$record" ]; then cp "$record" "$only_head/environments/$machine/"; fi
calibration=".asv/environments/$machine/calibration.json"   # tools/calibrate.py
if [ -f "$calibration" ]; then cp "$calibration" "$only_head/environments/$machine/"; fi
"$py" -m scipy_layers.reports --results "$only_head/results" --output "reports/$machine"
