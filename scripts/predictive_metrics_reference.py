"""Reference values for the predictive metrics of `bdlc predict --metrics`.

Writes crates/bdl-infer/tests/data/predictive_metrics_reference.json. Each case holds fixed
predictions made by a seeded NumPy generator and the scores that independent tools give them:

- classifiers (a three-class and a two-class case): the predictive class probabilities and the
  observed classes; accuracy (`sklearn.metrics.accuracy_score` of the argmax), NLL
  (`sklearn.metrics.log_loss`), Brier score (`sklearn.metrics.brier_score_loss`, whose default
  `scale_by_half="auto"` sums over the classes for more than two and halves that sum for two),
  AUROC for two classes (`sklearn.metrics.roc_auc_score`) and the expected calibration error
  for several bin counts (the binned formula of Guo et al. 2017 written here with NumPy: the
  probability of class 1 for two classes, the top-label confidence otherwise);
- a regression: predictive draws, the log-likelihood of each observation under each posterior
  draw, the posterior predictive means and the observed values; RMSE
  (`sklearn.metrics.root_mean_squared_error`), NLL (SciPy's `logsumexp`), CRPS
  (`properscoring.crps_ensemble`, the CRPS of the draws' empirical distribution) and the coverage
  of the central 50% and 90% intervals (`numpy.quantile`, linear interpolation, bounds included).

The probabilities of the two-class case are rounded to two decimals so that ties occur (AUROC
counts them one half). `crates/bdl-infer/tests/predictive_metrics.rs` holds
`bdl_infer::diagnostics::metrics` to these values within 1e-12 (relative).

usage:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy scipy scikit-learn properscoring
    /tmp/venv/bin/python scripts/predictive_metrics_reference.py \
        crates/bdl-infer/tests/data/predictive_metrics_reference.json
"""
import json
import sys

import numpy as np
import properscoring
import scipy
import sklearn
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn import metrics

BIN_COUNTS = [1, 5, 10, 15]


def expected_calibration_error(probability, happened, bins):
    """Σ_b (n_b / n) |freq_b − conf_b| over equal-width bins of [0, 1]."""
    index = np.minimum((np.clip(probability, 0.0, 1.0) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.mean() * abs(happened[inside].mean() - probability[inside].mean())
    return float(total)


def classifier_case(name, rng, n, classes, round_to=None):
    concentration = np.full(classes, 0.7)
    probabilities = rng.dirichlet(concentration, size=n)
    if round_to is not None:
        first = np.round(probabilities[:, 1], round_to)
        probabilities = np.column_stack([1.0 - first, first])
    # Targets drawn from slightly sharpened probabilities: a miscalibrated but useful classifier.
    sharpened = probabilities**1.5
    sharpened /= sharpened.sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(classes, p=row) for row in sharpened])
    labels = list(range(classes))
    best = probabilities.argmax(axis=1)
    case = {
        "name": name,
        "probabilities": probabilities.tolist(),
        "targets": targets.tolist(),
        "accuracy": float(metrics.accuracy_score(targets, best)),
        "nll": float(metrics.log_loss(targets, probabilities, labels=labels)),
    }
    if classes == 2:
        case["brier"] = float(metrics.brier_score_loss(targets, probabilities[:, 1]))
        case["auroc"] = float(metrics.roc_auc_score(targets, probabilities[:, 1]))
        event_probability = probabilities[:, 1]
        happened = (targets == 1).astype(float)
    else:
        case["brier"] = float(
            metrics.brier_score_loss(targets, probabilities, labels=labels)
        )
        case["auroc"] = None
        event_probability = probabilities[np.arange(n), best]
        happened = (best == targets).astype(float)
    case["ece"] = {
        str(bins): expected_calibration_error(event_probability, happened, bins)
        for bins in BIN_COUNTS
    }
    return case


def regression_case(rng, n, posterior_draws):
    # Each posterior draw s gives observation j a normal likelihood N(mu_js, sigma_s); one
    # predictive draw per posterior draw, as `bdlc predict` makes them.
    inputs = rng.uniform(-2.0, 2.0, size=n)
    slope = rng.normal(1.5, 0.2, size=posterior_draws)
    intercept = rng.normal(-0.3, 0.1, size=posterior_draws)
    sigma = np.exp(rng.normal(np.log(0.6), 0.15, size=posterior_draws))
    mu = intercept[None, :] + slope[None, :] * inputs[:, None]
    targets = 1.4 * inputs - 0.2 + rng.normal(0.0, 0.7, size=n)
    draws = mu + sigma[None, :] * rng.normal(size=(n, posterior_draws))
    log_lik = norm.logpdf(targets[:, None], loc=mu, scale=sigma[None, :])
    means = mu.mean(axis=1)

    def coverage(level):
        low = np.quantile(draws, (1.0 - level) / 2.0, axis=1)
        high = np.quantile(draws, (1.0 + level) / 2.0, axis=1)
        return float(np.mean((low <= targets) & (targets <= high)))

    return {
        "name": "regression",
        "draws": draws.tolist(),
        "log_lik": log_lik.tolist(),
        "means": means.tolist(),
        "targets": targets.tolist(),
        "rmse": float(metrics.root_mean_squared_error(targets, means)),
        "nll": float(-np.mean(logsumexp(log_lik, axis=1) - np.log(posterior_draws))),
        "crps": float(np.mean(properscoring.crps_ensemble(targets, draws))),
        "coverage_50": coverage(0.5),
        "coverage_90": coverage(0.9),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else (
        "crates/bdl-infer/tests/data/predictive_metrics_reference.json"
    )
    rng = np.random.default_rng(20261205)
    reference = {
        "tools": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "properscoring": properscoring.__version__,
        },
        "bin_counts": BIN_COUNTS,
        "classifiers": [
            classifier_case("three_classes", rng, 60, 3),
            classifier_case("two_classes_with_ties", rng, 80, 2, round_to=2),
        ],
        "regressions": [regression_case(rng, 40, 200)],
    }
    with open(out, "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    for case in reference["classifiers"]:
        print(case["name"], {k: case[k] for k in ("accuracy", "nll", "brier", "auroc", "ece")})
    for case in reference["regressions"]:
        print(case["name"], {k: case[k] for k in ("rmse", "nll", "crps", "coverage_50", "coverage_90")})


if __name__ == "__main__":
    main()
