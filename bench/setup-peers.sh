#!/usr/bin/env bash
# Installs the peer systems the benchmarks and reference-value scripts compare against
# (NumPyro with JAX, ArviZ, SciPy) into bench/.peers. Needs python3 and network access to PyPI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$here/.peers/bin/python" ]; then
    python3 -m venv "$here/.peers"
fi
"$here/.peers/bin/pip" install --quiet --upgrade pip
"$here/.peers/bin/pip" install --quiet numpyro jax jaxlib arviz scipy mpmath
echo "peers installed in $here/.peers"
