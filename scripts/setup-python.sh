#!/usr/bin/env bash
# Builds the `bdl` Python package's wheel with `maturin build --release` and installs it into a
# fresh virtual environment with what its tests need (pytest, NumPy, pandas, ArviZ, Ray, tqdm).
#
#   scripts/setup-python.sh                   # the wheel in target/wheels, the venv in .venv-py
#   .venv-py/bin/python -m pytest -q crates/bdl-py/tests
#
# Two environments: `.venv-py-build` holds maturin and is kept between runs; `.venv-py` itself
# is removed and made again each time, so the tests run against the wheel as `pip install`
# gives it to a user, never against the source tree. BDL_PY_VENV overrides the folder, PYTHON
# the interpreter (3.11 or later, with `venv`). Needs the Rust toolchain and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BDL_PY_VENV:-.venv-py}
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup-python.sh: $("$python" --version 2>&1) is older than 3.11" >&2
    exit 1
}
build="$venv-build"
if [ ! -x "$build/bin/maturin" ]; then
    "$python" -m venv "$build"
    "$build/bin/python" -m pip install --quiet "maturin>=1.5,<2"
fi
rm -rf target/wheels
# The wheel's Rust code compiles in the workspace's target folder with the release profile, so
# the dependencies `cargo build --release` already compiled are reused.
"$build/bin/maturin" build --release --manifest-path crates/bdl-py/Cargo.toml \
    --interpreter "$python" --out target/wheels
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
wheel=$(ls target/wheels/bdl-*.whl)
"$venv/bin/python" -m pip install --quiet "$wheel[arviz,ray]" pytest tqdm
"$venv/bin/python" -c 'import bdl, bdl.ray; print("bdl installed from", bdl.__file__)'
