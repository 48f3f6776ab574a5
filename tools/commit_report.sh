#!/usr/bin/env bash
# Reports for one machine from the HEAD commit's asv results alone, into reports/<machine>/
# (the committed references stay small and self-contained).
#   tools/commit_report.sh PYTHON MACHINE
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1 machine=$2
only_head=$(mktemp -d)
trap 'rm -rf "$only_head"' EXIT
mkdir -p "$only_head/$machine"
cp .asv/results/benchmarks.json "$only_head/"
cp ".asv/results/$machine/machine.json" ".asv/results/$machine/$(git rev-parse --short=8 HEAD)"-*.json \
    "$only_head/$machine/"
"$py" -m scipy_layers.reports --results "$only_head" --output "reports/$machine"
