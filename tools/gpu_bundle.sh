#!/usr/bin/env bash
# `make gpu-bundle`: what tools/gpu_session.sh needs on an NVIDIA machine that reaches no
# package registry, gathered into .gpu/ (git-ignored, ~3 MB):
#   .gpu/wheels/      asv and what it imports, built for the GPU machine's Python (3.12);
#                     torch, CuPy, scipy, pandas and pytest are already there
#   .gpu/repo.bundle  the HEAD commit: the machine gets the working tree without .git,
#                     and asv needs the repository to date and label the results
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${GPU_PYTHON_VERSION:-3.12}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "gpu-bundle: commit your changes first: the GPU run is recorded against HEAD" >&2
    exit 1
fi
rm -rf .gpu
mkdir -p .gpu/wheels
# Versions as in constraints.txt, except importlib_metadata: 8.7.0, as 10.x imports a
# lazy_importer module that the GPU machine lacks.
python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$PYTHON_VERSION" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --dest .gpu/wheels \
    asv==0.6.6 asv_runner==0.3.2 json5==0.17.3 tabulate==0.10.0 Pympler==1.1 \
    virtualenv==21.15.11 distlib==0.4.4 filelock==4.3.1 platformdirs==4.14.8 \
    python-discovery==1.9.6 zipp==4.1.2 importlib_metadata==8.7.0 \
    2> >(grep -v "is ignored: it is neither" >&2)  # this machine's extra indexes
git bundle create .gpu/repo.bundle HEAD 2>/dev/null
echo "gpu-bundle: .gpu/ ready for $(git rev-parse --short HEAD) ($(du -sh .gpu | cut -f1)); carry it"
