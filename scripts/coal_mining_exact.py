"""The exact posterior of models/coal_mining.bdl, the change point of the British coal-mining
disasters series, and the series itself.

Data: the yearly counts of coal-mining disasters (explosions killing ten or more) in Great
Britain from 1851, as tabulated from Jarrett, R. G. (1979), "A note on the intervals between
coal-mining disasters", Biometrika 66(1), 191-193, and distributed with PyMC's change-point
tutorial and test suite (``disaster_data``): 111 yearly counts, 1851-1961, 191 disasters in
all (Jarrett's list of 191 explosions, 15 March 1851 to 22 March 1962). The PyMC tutorial
marks two of the years as missing; the counts here are those of its test suite, which has all
111.

Model: early_rate, late_rate ~ Exponential(1) independently; the switch point s is uniform on
{0, ..., T - 1}; year t (0-based) has Poisson(early_rate) disasters when t <= s and
Poisson(late_rate) after. With Exponential(1) = Gamma(1, 1) priors the rates integrate out in
closed form: for n years holding S disasters,

    integral of lambda^S exp(-n lambda) exp(-lambda) d lambda = Gamma(S + 1) / (n + 1)^(S + 1),

so p(s | y) is proportional to that product over the two segments, and given s each rate is
Gamma(S + 1, n + 1): E[rate | s] = (S + 1) / (n + 1), E[rate^2 | s] = (S + 1)(S + 2) / (n + 1)^2.
Summing over s gives the posterior means and sds of the rates, of s, and of the switch year
1851 + s, exactly (no sampling). Pure Python: python3 scripts/coal_mining_exact.py

Writes models/data/coal_mining.json (the data) and tests/infer/coal_mining_exact.json (the
posterior, in the layout crates/bdlc/tests/infer_support reads: MCSEs are 0 for exact values).
"""

import json
import math
import os

DISASTERS = [
    4, 5, 4, 0, 1, 4, 3, 4, 0, 6, 3, 3, 4, 0, 2, 6,
    3, 3, 5, 4, 5, 3, 1, 4, 4, 1, 5, 5, 3, 4, 2, 5,
    2, 2, 3, 4, 2, 1, 3, 2, 2, 1, 1, 1, 1, 3, 0, 0,
    1, 0, 1, 1, 0, 0, 3, 1, 0, 3, 2, 2, 0, 1, 1, 1,
    0, 1, 0, 1, 0, 0, 0, 2, 1, 0, 0, 0, 1, 1, 0, 2,
    3, 3, 1, 1, 2, 1, 1, 1, 1, 2, 4, 2, 0, 0, 1, 4,
    0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1,
]
FIRST_YEAR = 1851


def segment_log_marginal(count, years):
    return math.lgamma(count + 1) - (count + 1) * math.log(years + 1)


def main():
    assert len(DISASTERS) == 111 and sum(DISASTERS) == 191
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    total = len(DISASTERS)
    log_weights = []
    moments = []
    for s in range(total):
        early_count, early_years = sum(DISASTERS[: s + 1]), s + 1
        late_count, late_years = sum(DISASTERS[s + 1 :]), total - s - 1
        log_weights.append(
            segment_log_marginal(early_count, early_years)
            + segment_log_marginal(late_count, late_years)
        )
        moments.append(
            {
                "early_rate": (
                    (early_count + 1) / (early_years + 1),
                    (early_count + 1) * (early_count + 2) / (early_years + 1) ** 2,
                ),
                "late_rate": (
                    (late_count + 1) / (late_years + 1),
                    (late_count + 1) * (late_count + 2) / (late_years + 1) ** 2,
                ),
                "switchpoint": (s, s * s),
                "switch_year": (FIRST_YEAR + s, (FIRST_YEAR + s) ** 2),
            }
        )
    largest = max(log_weights)
    weights = [math.exp(w - largest) for w in log_weights]
    norm = sum(weights)
    probabilities = [w / norm for w in weights]
    quantities = {}
    for name in ["early_rate", "late_rate", "switchpoint", "switch_year"]:
        mean = sum(p * m[name][0] for p, m in zip(probabilities, moments))
        second = sum(p * m[name][1] for p, m in zip(probabilities, moments))
        quantities[name] = {
            "mean": mean,
            "sd": math.sqrt(max(second - mean * mean, 0.0)),
            "mcse_mean": 0.0,
            "mcse_sd": 0.0,
        }
    reference = {
        "source": "scripts/coal_mining_exact.py: exact sums over the switch point",
        "models": [
            {
                "name": "coal_mining",
                "quantities": quantities,
                "switchpoint_probabilities": probabilities,
            }
        ],
    }
    with open(os.path.join(root, "tests/infer/coal_mining_exact.json"), "w") as out:
        json.dump(reference, out, indent=1)
        out.write("\n")
    with open(os.path.join(root, "models/data/coal_mining.json"), "w") as out:
        json.dump({"T": total, "disasters": DISASTERS}, out)
        out.write("\n")
    for name, q in quantities.items():
        print(f"{name:12} mean {q['mean']:.6f} sd {q['sd']:.6f}")


if __name__ == "__main__":
    main()
