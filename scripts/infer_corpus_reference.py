"""Data and exact posteriors of the inference corpus in tests/infer/.

For each model of the corpus this script writes its data file (`NAME.data.json`) and its expected
file (`NAME.expected.json`): the exact posterior mean and sd of every scalar column (named as in
the CmdStan CSV files bdlc writes: `p`, `x.1`, ...), the exact posterior covariance where the
posterior is Gaussian, and the inference runs the test harness `crates/bdlc/tests/infer_corpus.rs`
makes on the model. Conjugate posteriors are taken from their closed forms (checked against
SciPy's distributions); the small logistic regression has none, so its moments are integrals
computed by the trapezoidal rule on a grid wide and fine enough that halving the spacing changes
them by less than 1e-9.

usage: bench/setup-peers.sh, then
    bench/.peers/bin/python scripts/infer_corpus_reference.py tests/infer
"""
import json
import os
import sys

import numpy as np
from scipy import stats

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/infer"

# Inference runs. NUTS and HMC run through the `bdlc` binary with the CLI's defaults (4 chains of
# 1,000 warm-up and 1,000 kept iterations; HMC with its default 16 leapfrog steps) and the flags
# listed. SVI runs through the library: Adam at 0.05 decayed exponentially to 0.0005 over 5,000
# steps with 16 particles per ELBO estimate, so that the final iterate sits at the optimum rather
# than jittering around it, then 10,000 draws from the fitted guide.
SVI_SETTINGS = {"steps": 5000, "learning_rate": 0.05, "final_learning_rate": 0.0005, "particles": 16, "draws": 10000}


def nuts(seed, *flags):
    return {"method": "nuts", "seed": seed, "flags": list(flags)}


def svi(guide, seed, covariance=False):
    return {"method": "svi", "guide": guide, "seed": seed, **SVI_SETTINGS, "covariance": covariance}


def every_guide(seed, covariance_guides=()):
    return [svi(g, seed + k, g in covariance_guides) for k, g in enumerate(["diag", "mvn", "lowrank", "delta", "laplace"])]


def write(name, about, model, posterior, runs, covariance=None, data=None):
    if data is not None:
        with open(os.path.join(OUT, f"{name}.data.json"), "w") as f:
            json.dump(data, f)
            f.write("\n")
    expected = {
        "about": about,
        "model": model,
        "posterior": [{"column": c, "mean": float(m), "sd": float(s)} for c, m, s in posterior],
        "runs": runs,
    }
    if covariance is not None:
        expected["covariance"] = [[float(v) for v in row] for row in covariance]
    with open(os.path.join(OUT, f"{name}.expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")


def close(a, b, what):
    assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), f"{what}: {a} vs {b}"


# ---------------------------------------------------------------- Beta–Bernoulli
# Beta(1, 1) and eight ones in ten tosses: Beta(9, 3). In logit space (where the guides live) the
# density with its Jacobian p(1 - p) is p^9 (1 - p)^3, whose mode is p = 9/12, the posterior
# mean: so the MAP point (the Delta guide) is compared with the mean too.
y = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
a, b = 1 + sum(y), 1 + len(y) - sum(y)
posterior = stats.beta(a, b)
mean, sd = a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
close(mean, posterior.mean(), "beta mean")
close(sd, posterior.std(), "beta sd")
write("beta_bernoulli", "Beta(1, 1) prior, 8 ones and 2 zeros: the posterior is Beta(9, 3).",
      "beta_bernoulli.bdl", [("p", mean, sd)],
      [nuts(1)] + every_guide(10), data={"y": y})

# ---------------------------------------------------------------- Normal–Normal
y = [2.1, 0.4, 3.3, 1.7, 2.9, 1.2]
prior_loc, prior_sd, noise_sd = 1.0, 2.0, 1.5
precision = 1 / prior_sd**2 + len(y) / noise_sd**2
mean = (prior_loc / prior_sd**2 + sum(y) / noise_sd**2) / precision
sd = np.sqrt(1 / precision)
write("normal_normal", "mu ~ Normal(1, 2), six observations with known sd 1.5: a normal posterior.",
      "normal_normal.bdl", [("mu", mean, sd)],
      [nuts(2)] + every_guide(20, ("diag", "mvn", "laplace")), covariance=[[sd * sd]], data={"y": y})

# ---------------------------------------------------------------- Gamma–Poisson
# Gamma(2, 1) (shape, rate) and twenty counts: Gamma(2 + sum y, 1 + 20). In log space the density
# with its Jacobian is rate^(shape) exp(-rate' rate), whose mode is shape/rate', the mean.
y = [3, 1, 4, 1, 5, 2, 2, 6, 5, 3, 5, 0, 2, 3, 4, 1, 2, 3, 3, 2]
shape, rate = 2 + sum(y), 1 + len(y)
posterior = stats.gamma(shape, scale=1 / rate)
mean, sd = shape / rate, np.sqrt(shape) / rate
close(mean, posterior.mean(), "gamma mean")
close(sd, posterior.std(), "gamma sd")
write("gamma_poisson", "rate ~ Gamma(2, 1), twenty Poisson counts: the posterior is Gamma(2 + sum y, 21).",
      "gamma_poisson.bdl", [("rate", mean, sd)],
      [nuts(3)] + every_guide(30), data={"y": y})

# ---------------------------------------------------------------- bayes_linreg (models/)
# b, w ~ Normal(0, 5), noise sd 1, (x, y) = (2, 0) and (-2, -2): precision I/25 + X'X with
# X = [[1, 2], [1, -2]], so X'X = diag(2, 8) and the posterior covariance is diagonal.
X = np.array([[1.0, 2.0], [1.0, -2.0]])
yv = np.array([0.0, -2.0])
precision = np.eye(2) / 25 + X.T @ X
covariance = np.linalg.inv(precision)
mean = covariance @ X.T @ yv
write("bayes_linreg", "The course notebook's Bayesian linear regression with known noise: a Gaussian posterior.",
      "../../models/bayes_linreg.bdl",
      [("b", mean[0], np.sqrt(covariance[0, 0])), ("w", mean[1], np.sqrt(covariance[1, 1]))],
      [nuts(4), {"method": "hmc", "seed": 5, "flags": []}] + every_guide(40, ("diag", "mvn", "laplace")),
      covariance=covariance)

# ---------------------------------------------------------------- 5-D correlated Gaussian
loc = np.array([1.0, -1.0, 0.0, 2.0, 0.5])
scales = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
lag = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
covariance = np.outer(scales, scales) * 0.9**lag
write("gaussian_5d", "x ~ MultivariateNormal(loc, S) with S_ij = s_i s_j 0.9^|i-j|: strongly correlated, for the dense metric.",
      "gaussian_5d.bdl", [(f"x.{i + 1}", loc[i], scales[i]) for i in range(5)],
      [nuts(6, "--metric", "dense"), svi("mvn", 60, True), svi("laplace", 61, True)],
      covariance=covariance, data={"D": 5, "loc": loc.tolist(), "covariance": covariance.tolist()})

# ---------------------------------------------------------------- small logistic regression
rng = np.random.default_rng(20240611)
x = np.round(rng.normal(size=30), 3)
y = (rng.uniform(size=30) < 1 / (1 + np.exp(-(0.5 - 1.5 * x)))).astype(int)


def log_posterior(alpha, beta):
    eta = alpha[..., None] + beta[..., None] * x
    # log σ(η) for y = 1 and log σ(−η) for y = 0, written stably.
    log_lik = np.sum(-np.logaddexp(0.0, -np.where(y == 1, eta, -eta)), axis=-1)
    return log_lik + stats.norm(0, 2).logpdf(alpha) + stats.norm(0, 2).logpdf(beta)


def grid_moments(n_points, half_width=7.0):
    # Two passes: a coarse look for the centre and spread, then the fine grid over ±half_width sd.
    coarse = np.linspace(-12, 12, 481)
    A, B = np.meshgrid(coarse, coarse, indexing="ij")
    w = np.exp(log_posterior(A, B) - log_posterior(A, B).max())
    w /= w.sum()
    centre = [np.sum(w * A), np.sum(w * B)]
    spread = [np.sqrt(np.sum(w * (A - centre[0]) ** 2)), np.sqrt(np.sum(w * (B - centre[1]) ** 2))]
    axes = [np.linspace(c - half_width * s * 1.5, c + half_width * s * 1.5, n_points) for c, s in zip(centre, spread)]
    A, B = np.meshgrid(*axes, indexing="ij")
    lp = log_posterior(A, B)
    w = np.exp(lp - lp.max())
    # The trapezoidal rule on a uniform grid is the plain sum up to the (negligible) edge terms.
    w /= w.sum()
    m = np.array([np.sum(w * A), np.sum(w * B)])
    c = np.array([[np.sum(w * (A - m[0]) ** 2), np.sum(w * (A - m[0]) * (B - m[1]))],
                  [np.sum(w * (A - m[0]) * (B - m[1])), np.sum(w * (B - m[1]) ** 2)]])
    return m, c


mean, covariance = grid_moments(1601)
mean_half, covariance_half = grid_moments(801)
assert np.max(np.abs(mean - mean_half)) < 1e-9 and np.max(np.abs(covariance - covariance_half)) < 1e-9
write("logistic_small", "Logistic regression, 30 points, alpha and beta ~ Normal(0, 2): moments by quadrature.",
      "logistic_small.bdl",
      [("alpha", mean[0], np.sqrt(covariance[0, 0])), ("beta", mean[1], np.sqrt(covariance[1, 1]))],
      [nuts(7)], data={"x": x.tolist(), "y": y.tolist()})
print("wrote the corpus's data and expected files into", OUT)
