#!/usr/bin/env python3
"""Reference values of the language's scalar functions for the runtime's tests.

Every value is computed by mpmath at 50 significant digits from the function's definition (not
from the formula the runtime uses), then rounded to the nearest double.

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install mpmath
    /tmp/refenv/bin/python scripts/function_reference.py

It writes crates/bdl-runtime/tests/data/functions_reference.json: for each function, a list of
[arguments, value] pairs.
"""

import json
import os

import mpmath as mp

mp.mp.dps = 50

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "bdl-runtime", "tests", "data", "functions_reference.json",
)


def inv_logit(x):
    return 1 / (1 + mp.exp(-x))


UNARY = {
    "log10": (lambda x: mp.log10(x), [0.3, 1.7, 250.0]),
    "log2": (lambda x: mp.log(x, 2), [0.3, 1.7, 250.0]),
    "expm1": (lambda x: mp.expm1(x), [-1.3, 1e-7, 0.8]),
    "log1p": (lambda x: mp.log1p(x), [-0.6, 1e-7, 3.5]),
    "erf": (lambda x: mp.erf(x), [-1.2, 0.1, 2.5]),
    "erfc": (lambda x: mp.erfc(x), [-1.2, 0.1, 4.5]),
    "logit": (lambda x: mp.log(x / (1 - x)), [0.02, 0.4, 0.93]),
    "inv_logit": (inv_logit, [-3.0, 0.2, 5.0]),
    "log_inv_logit": (lambda x: mp.log(inv_logit(x)), [-3.0, 0.2, 5.0]),
    "log1m_inv_logit": (lambda x: mp.log(1 - inv_logit(x)), [-3.0, 0.2, 5.0]),
    "lgamma": (lambda x: mp.log(abs(mp.gamma(x))), [0.4, 2.5, 17.3]),
    "digamma": (lambda x: mp.digamma(x), [0.4, 2.5, 17.3]),
    "abs": (lambda x: abs(x), [-2.5, 0.7]),
    "square": (lambda x: x * x, [-2.5, 0.7]),
    "cbrt": (lambda x: mp.sign(x) * mp.cbrt(abs(x)), [-8.5, 0.3, 27.2]),
}

BINARY = {
    "pow": (lambda x, y: mp.power(x, y), [(1.7, 2.3), (0.4, -1.5), (3.0, 0.5)]),
    "fmin": (lambda x, y: min(x, y), [(1.7, 2.3), (-0.4, -1.5)]),
    "fmax": (lambda x, y: max(x, y), [(1.7, 2.3), (-0.4, -1.5)]),
    "hypot": (lambda x, y: mp.sqrt(x * x + y * y), [(3.0, 4.0), (-0.7, 1.9)]),
    "atan2": (lambda y, x: mp.atan2(y, x), [(1.0, 2.0), (0.5, -1.5), (-0.8, -0.3)]),
    "lbeta": (lambda a, b: mp.log(mp.beta(a, b)), [(0.5, 0.5), (2.3, 7.1), (30.0, 4.5)]),
    "lchoose": (lambda n, k: mp.log(mp.binomial(n, k)), [(10.0, 3.0), (7.5, 2.2), (40.0, 20.0)]),
}


def main():
    out = {}
    for name, (f, points) in UNARY.items():
        out[name] = [[[x], float(f(mp.mpf(x)))] for x in points]
    for name, (f, points) in BINARY.items():
        out[name] = [[[x, y], float(f(mp.mpf(x), mp.mpf(y)))] for x, y in points]
    lines = [f"  {json.dumps(name)}: {json.dumps(out[name])}" for name in sorted(out)]
    with open(OUT, "w") as handle:
        handle.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
