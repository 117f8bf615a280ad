#!/usr/bin/env python3
"""Reference log-densities, moments and KL divergences for the bdl-dist tests.

Every value is computed by SciPy (NumPyro only for LKJCholesky, which SciPy lacks; Delta, Flat
and FlatPositive follow from their definitions). KL divergences between univariate continuous
distributions are computed by numerical integration, so they check the closed forms in Rust
against something that does not share their algebra.

Run `bench/setup-peers.sh` once, then from the repository root:

    bench/.peers/bin/python scripts/dist_reference.py

It writes crates/bdl-dist/tests/data/reference.json. Numbers that JSON cannot hold are written
as the strings "inf", "-inf" and "nan".
"""

import json
import math
import os

import numpy as np
from scipy import integrate, special, stats

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "crates", "bdl-dist", "tests", "data", "reference.json"
)


def encode(x):
    """Turns numbers and nested arrays into JSON, with non-finite numbers as strings."""
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    if isinstance(x, np.ndarray):
        return encode(x.tolist())
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


CASES = []


def case(family, params, value, log_prob, mean=None, variance=None):
    entry = {
        "family": family,
        "params": {k: encode(v) for k, v in params.items()},
        "value": encode(value),
        "log_prob": encode(log_prob),
    }
    if mean is not None:
        entry["mean"] = encode(mean)
    if variance is not None:
        entry["variance"] = encode(variance)
    CASES.append(entry)


def univariate(family, params, frozen, values, discrete=False):
    """Adds one case per value for a frozen SciPy distribution."""
    mean = frozen.mean()
    if family == "StudentT" and params["df"] <= 1:
        # The mean does not exist; SciPy reports inf where PyTorch (and bdl) report NaN.
        mean = None
    for v in values:
        lp = frozen.logpmf(v) if discrete else frozen.logpdf(v)
        case(family, params, v, lp, mean, frozen.var())


# Continuous univariate families. The values include far tails and points outside the support.
for loc, scale, xs in [
    (0.0, 1.0, [0.0, -3.5, 40.0, -1000.0]),
    (2.5, 0.1, [2.4, 2.5, 7.0]),
    (-1000.0, 100.0, [5000.0, -1000.0]),
]:
    univariate("Normal", {"loc": loc, "scale": scale}, stats.norm(loc, scale), xs)

for scale, xs in [(1.0, [0.0, 0.5, 30.0, -1.0]), (0.01, [0.001, 2.0])]:
    univariate("HalfNormal", {"scale": scale}, stats.halfnorm(scale=scale), xs)

for loc, scale, xs in [(0.0, 1.0, [1.0, 1e-30, 1e30, -2.0]), (3.0, 0.25, [20.0, 0.0])]:
    univariate("LogNormal", {"loc": loc, "scale": scale}, stats.lognorm(s=scale, scale=math.exp(loc)), xs)

for low, high, xs in [(0.0, 1.0, [0.5, 0.999, 1.5, -0.1]), (-3.0, 1e6, [123.0, 999999.0])]:
    univariate("Uniform", {"low": low, "high": high}, stats.uniform(low, high - low), xs)

for rate, xs in [(1.0, [0.0, 1.0, 700.0, -1.0]), (1e-3, [5e4]), (250.0, [0.3])]:
    univariate("Exponential", {"rate": rate}, stats.expon(scale=1.0 / rate), xs)

for a, rate, xs in [
    (2.0, 3.0, [0.5, 1e-8, 40.0, -1.0]),
    (0.1, 1.0, [1e-200, 3.0]),
    (1e4, 1e2, [100.0, 80.0]),
]:
    univariate("Gamma", {"concentration": a, "rate": rate}, stats.gamma(a, scale=1.0 / rate), xs)

for a, rate, xs in [(3.0, 2.0, [0.5, 1e-3, 1e6, -1.0]), (0.5, 0.1, [1e-4, 100.0])]:
    univariate("InverseGamma", {"concentration": a, "rate": rate}, stats.invgamma(a, scale=rate), xs)

for c1, c0, xs in [
    (2.0, 5.0, [0.3, 1e-12, 0.999999, 1.5]),
    (0.5, 0.5, [0.5, 1e-10]),
    (300.0, 20.0, [0.9, 0.5]),
]:
    univariate("Beta", {"concentration1": c1, "concentration0": c0}, stats.beta(c1, c0), xs)

for loc, scale, xs in [(0.0, 1.0, [0.0, 1e10, -50.0]), (-2.0, 0.01, [3.0, -2.0])]:
    univariate("Cauchy", {"loc": loc, "scale": scale}, stats.cauchy(loc, scale), xs)

for scale, xs in [(1.0, [0.0, 2.0, 1e8, -0.5]), (25.0, [3.0])]:
    univariate("HalfCauchy", {"scale": scale}, stats.halfcauchy(scale=scale), xs)

for df, loc, scale, xs in [
    (3.0, 0.0, 1.0, [0.0, 1.5, 1e6, -40.0]),
    (1.5, 2.0, 0.5, [2.0, -1e3]),
    (1e4, -1.0, 2.0, [0.0, 30.0]),
    (0.5, 0.0, 1.0, [7.0]),
]:
    univariate("StudentT", {"df": df, "loc": loc, "scale": scale}, stats.t(df, loc, scale), xs)

for loc, scale, xs in [(0.0, 1.0, [0.0, -2.0, 700.0, -500.0]), (5.0, 0.01, [5.001, 4.0])]:
    univariate("Laplace", {"loc": loc, "scale": scale}, stats.laplace(loc, scale), xs)

for loc, scale, xs in [(0.0, 1.0, [0.0, 3.0, -800.0, 800.0]), (1.0, 30.0, [-200.0, 1.0])]:
    univariate("Logistic", {"loc": loc, "scale": scale}, stats.logistic(loc, scale), xs)

for loc, scale, low, high, xs in [
    (0.0, 1.0, -1.0, 2.0, [0.5, -0.999, 1.999, 2.5]),
    (0.0, 1.0, 5.0, math.inf, [5.0, 6.0, 12.0, 4.0]),
    (1.0, 2.0, -math.inf, -3.0, [-3.5, -25.0]),
    (0.0, 1.0, -30.0, -20.0, [-20.5, -29.0]),
    (-2.0, 0.5, -math.inf, math.inf, [0.0, -2.0]),
]:
    a, b = (low - loc) / scale, (high - loc) / scale
    univariate(
        "TruncatedNormal",
        {"loc": loc, "scale": scale, "low": low, "high": high},
        stats.truncnorm(a, b, loc=loc, scale=scale),
        xs,
    )

# Discrete univariate families.
for p, ks in [(0.3, [0.0, 1.0, 2.0, 0.5]), (1e-12, [1.0, 0.0])]:
    univariate("Bernoulli", {"probs": p}, stats.bernoulli(p), ks, discrete=True)
for logit, ks in [(40.0, [0.0, 1.0]), (-800.0, [1.0, 0.0]), (0.7, [1.0, -1.0])]:
    p = special.expit(logit)
    for k in ks:
        # The log-mass from logits is written with log_expit so that the far tails stay exact.
        if k in (0.0, 1.0):
            lp = special.log_expit(logit) if k == 1.0 else special.log_expit(-logit)
        else:
            lp = -math.inf
        case("Bernoulli", {"logits": logit}, k, lp, p, p * (1 - p))

for n, p, ks in [
    (10.0, 0.3, [0.0, 3.0, 10.0, 11.0]),
    (1000.0, 0.999, [500.0, 1000.0]),
    (7.0, 0.5, [2.5, -1.0]),
]:
    univariate("Binomial", {"total_count": n, "probs": p}, stats.binom(int(n), p), ks, discrete=True)
for n, logit, ks in [(20.0, -30.0, [0.0, 20.0, 4.0]), (5.0, 2.0, [3.0])]:
    p = special.expit(logit)
    for k in ks:
        lp = (
            special.gammaln(n + 1)
            - special.gammaln(k + 1)
            - special.gammaln(n - k + 1)
            + k * special.log_expit(logit)
            + (n - k) * special.log_expit(-logit)
        )
        # The same value from SciPy's pmf where it does not underflow, as a cross-check.
        direct = stats.binom(int(n), p).logpmf(k)
        assert not np.isfinite(direct) or abs(direct - lp) <= 1e-6 * max(1.0, abs(lp)), (direct, lp)
        case("Binomial", {"total_count": n, "logits": logit}, k, lp, n * p, n * p * (1 - p))

for probs, ks in [([0.2, 0.3, 0.5], [0.0, 2.0, 3.0, 1.5]), ([1e-300, 1.0 - 1e-10, 1e-10], [0.0, 1.0])]:
    probs = np.array(probs)
    probs_norm = probs / probs.sum()
    for k in ks:
        if k == int(k) and 0 <= k < len(probs):
            lp = math.log(probs_norm[int(k)])
        else:
            lp = -math.inf
        case("Categorical", {"probs": probs}, k, lp)
for logits, ks in [([1000.0, 0.0, -1000.0], [2.0, 0.0]), ([0.1, -0.2, 0.3, 2.0], [3.0, 1.0])]:
    logits = np.array(logits)
    log_probs = logits - special.logsumexp(logits)
    for k in ks:
        case("Categorical", {"logits": logits}, k, log_probs[int(k)])

for rate, ks in [(3.0, [0.0, 20.0, 200.0, -1.0]), (1e-3, [5.0, 0.0]), (1e4, [1e4, 9000.0]), (2.0, [1.5])]:
    univariate("Poisson", {"rate": rate}, stats.poisson(rate), ks, discrete=True)

# NegativeBinomial counts successes (probability `probs`) before `total_count` failures, as in
# Pyro; SciPy's nbinom(n, p) counts failures before n successes, so the roles of p and 1 - p swap.
for r, p, ks in [(5.5, 0.3, [0.0, 4.0, 60.0, -1.0]), (0.5, 0.9, [0.0, 100.0]), (100.0, 0.01, [3.0, 1.5])]:
    frozen = stats.nbinom(r, 1.0 - p)
    univariate("NegativeBinomial", {"total_count": r, "probs": p}, frozen, ks, discrete=True)
for r, logit, ks in [(3.0, 1.2, [0.0, 7.0, 200.0]), (2.0, -40.0, [0.0, 2.0])]:
    p = special.expit(logit)
    for k in ks:
        lp = (
            special.gammaln(k + r)
            - special.gammaln(r)
            - special.gammaln(k + 1)
            + r * special.log_expit(-logit)
            + k * special.log_expit(logit)
        )
        case("NegativeBinomial", {"total_count": r, "logits": logit}, k, lp, r * p / (1 - p), r * p / (1 - p) ** 2)

# Multivariate families.
for conc, xs in [
    ([1.0, 2.0, 3.0], [[0.2, 0.3, 0.5], [0.01, 0.01, 0.98], [1e-9, 0.5, 0.5 - 1e-9]]),
    ([0.1, 0.1, 0.1, 0.1], [[0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]]),
    ([500.0, 300.0], [[0.6, 0.4], [0.7, 0.3]]),
]:
    frozen = stats.dirichlet(conc)
    for x in xs:
        case("Dirichlet", {"concentration": conc}, x, frozen.logpdf(np.array(x)), frozen.mean(), frozen.var())
case("Dirichlet", {"concentration": [1.0, 2.0, 3.0]}, [0.2, 0.3, 0.6], -math.inf)
case("Dirichlet", {"concentration": [1.0, 2.0, 3.0]}, [-0.1, 0.6, 0.5], -math.inf)

mvn_loc = np.array([1.0, -1.0, 0.5])
mvn_cov = np.array([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]])
mvn_tril = np.linalg.cholesky(mvn_cov)
mvn_prec = np.linalg.inv(mvn_cov)
for x in [[1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [30.0, -25.0, 40.0], [-1e3, 2e3, 5e2]]:
    lp = stats.multivariate_normal(mvn_loc, mvn_cov).logpdf(x)
    case("MultivariateNormal", {"loc": mvn_loc, "covariance_matrix": mvn_cov}, x, lp, mvn_loc, np.diag(mvn_cov))
    case("MultivariateNormal", {"loc": mvn_loc, "precision_matrix": mvn_prec}, x, lp, mvn_loc, np.diag(mvn_cov))
    case("MultivariateNormal", {"loc": mvn_loc, "scale_tril": mvn_tril}, x, lp, mvn_loc, np.diag(mvn_cov))
tight_cov = np.array([[1e-4, 0.0], [0.0, 4.0]])
for x in [[0.01, 3.0], [0.0, 0.0]]:
    lp = stats.multivariate_normal([0.0, 0.0], tight_cov).logpdf(x)
    case("MultivariateNormal", {"loc": [0.0, 0.0], "covariance_matrix": tight_cov}, x, lp)

# Wishart(df, covariance_matrix = V) is SciPy's wishart(df, scale = V).
wishart_scale = np.array([[1.0, 0.3], [0.3, 2.0]])
for df, xs in [
    (4.0, [[[2.0, 0.5], [0.5, 3.0]], [[0.01, 0.0], [0.0, 0.02]], [[40.0, -10.0], [-10.0, 60.0]]]),
    (2.5, [[[1.0, 0.9], [0.9, 1.0]]]),
]:
    frozen = stats.wishart(df, wishart_scale)
    for x in xs:
        lp = frozen.logpdf(np.array(x))
        case("Wishart", {"df": df, "covariance_matrix": wishart_scale}, x, lp, frozen.mean(), frozen.var())
        case("Wishart", {"df": df, "precision_matrix": np.linalg.inv(wishart_scale)}, x, lp)
        case("Wishart", {"df": df, "scale_tril": np.linalg.cholesky(wishart_scale)}, x, lp)
case("Wishart", {"df": 4.0, "covariance_matrix": wishart_scale}, [[1.0, 2.0], [2.0, 1.0]], -math.inf)


def lkj_cases():
    """LKJCholesky log-densities from NumPyro (SciPy has no LKJ distribution)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from numpyro.distributions import LKJCholesky

    rng = np.random.default_rng(20240501)
    for dim, eta in [(2, 1.0), (3, 2.0), (4, 0.5), (3, 50.0)]:
        for _ in range(2):
            a = rng.normal(size=(dim, dim))
            cov = a @ a.T + 0.5 * np.eye(dim)
            d = np.sqrt(np.diag(cov))
            corr = cov / np.outer(d, d)
            chol = np.linalg.cholesky(corr)
            lp = float(LKJCholesky(dim, eta).log_prob(jnp.array(chol)))
            case("LKJCholesky", {"dim": float(dim), "concentration": eta}, chol, lp)
    # A factor close to singular: the density of a near-degenerate correlation matrix.
    corr = np.array([[1.0, 0.999], [0.999, 1.0]])
    chol = np.linalg.cholesky(corr)
    lp = float(LKJCholesky(2, 3.0).log_prob(jnp.array(chol)))
    case("LKJCholesky", {"dim": 2.0, "concentration": 3.0}, chol, lp)
    # Outside the support: an upper-triangular entry, and a row that is not of unit length.
    case("LKJCholesky", {"dim": 2.0, "concentration": 1.0}, [[1.0, 0.5], [0.0, 1.0]], -math.inf)
    case("LKJCholesky", {"dim": 2.0, "concentration": 1.0}, [[1.0, 0.0], [0.5, 0.5]], -math.inf)


lkj_cases()

# Delta, Flat and FlatPositive follow from their definitions.
for v, log_density, x, lp in [
    (1.5, 0.0, 1.5, 0.0),
    (1.5, 0.0, 1.4, -math.inf),
    (-2.0, -3.0, -2.0, -3.0),
    (0.0, 0.0, 0.0, 0.0),
]:
    case("Delta", {"v": v, "log_density": log_density}, x, lp, v, 0.0)
for x in [0.0, -1e300, 1e300, 3.0]:
    case("Flat", {}, x, 0.0)
for x, lp in [(1.0, 0.0), (1e-300, 0.0), (1e300, 0.0), (-1.0, -math.inf), (0.0, -math.inf)]:
    case("FlatPositive", {}, x, lp)

# A few batched cases: parameters and values broadcast, and the result has the batch shape.
locs = np.array([0.0, 1.0, -2.0])
scales = np.array([[1.0], [0.5]])
xs = np.array([[0.3, 2.0, -40.0], [1.0, 1.0, 1.0]])
case("Normal", {"loc": locs, "scale": scales}, xs, stats.norm(locs, scales).logpdf(xs))
rates = np.array([0.5, 2.0, 30.0])
ks = np.array([0.0, 3.0, 30.0])
case("Poisson", {"rate": rates}, ks, stats.poisson(rates).logpmf(ks))


# KL divergences. Univariate continuous pairs are integrated numerically.
KL = []


def kl_case(p_family, p_params, q_family, q_params, value):
    KL.append(
        {
            "p": {"family": p_family, "params": {k: encode(v) for k, v in p_params.items()}},
            "q": {"family": q_family, "params": {k: encode(v) for k, v in q_params.items()}},
            "kl": encode(value),
        }
    )


def kl_integral(p, q, low, high):
    def integrand(x):
        lp = p.logpdf(x)
        density = math.exp(lp) if np.isfinite(lp) else 0.0
        if density == 0.0:
            return 0.0
        return density * (lp - q.logpdf(x))

    # Infinite ends are replaced by quantiles 1e-30 from them: the mass left out is negligible,
    # and quad's transformation of infinite ranges overflows on these integrands.
    low = max(low, p.ppf(1e-30))
    high = min(high, p.isf(1e-30))
    # Split at the quantiles of p so quad sees where the mass is.
    points = [p.ppf(t) for t in (1e-12, 0.01, 0.25, 0.5, 0.75, 0.99, 1 - 1e-12)]
    points = [low] + [x for x in points if low < x < high] + [high]
    total = 0.0
    for a, b in zip(points[:-1], points[1:]):
        value, _ = integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)
        total += value
    return total


inf = math.inf
for (pf, pp, qf, qp, p, q, low, high) in [
    ("Normal", {"loc": 0.3, "scale": 1.5}, "Normal", {"loc": -1.0, "scale": 0.7},
     stats.norm(0.3, 1.5), stats.norm(-1.0, 0.7), -inf, inf),
    ("Normal", {"loc": 0.0, "scale": 1.0}, "Normal", {"loc": 0.0, "scale": 1.0},
     stats.norm(0, 1), stats.norm(0, 1), -inf, inf),
    ("Gamma", {"concentration": 2.0, "rate": 3.0}, "Gamma", {"concentration": 0.7, "rate": 1.2},
     stats.gamma(2.0, scale=1 / 3.0), stats.gamma(0.7, scale=1 / 1.2), 0.0, inf),
    ("Beta", {"concentration1": 2.0, "concentration0": 5.0}, "Beta", {"concentration1": 1.5, "concentration0": 0.8},
     stats.beta(2.0, 5.0), stats.beta(1.5, 0.8), 0.0, 1.0),
    ("Exponential", {"rate": 2.0}, "Exponential", {"rate": 0.3},
     stats.expon(scale=0.5), stats.expon(scale=1 / 0.3), 0.0, inf),
    ("Laplace", {"loc": 1.0, "scale": 2.0}, "Laplace", {"loc": -0.5, "scale": 0.5},
     stats.laplace(1.0, 2.0), stats.laplace(-0.5, 0.5), -inf, inf),
    ("LogNormal", {"loc": 0.2, "scale": 0.6}, "LogNormal", {"loc": -0.3, "scale": 1.1},
     stats.lognorm(s=0.6, scale=math.exp(0.2)), stats.lognorm(s=1.1, scale=math.exp(-0.3)), 0.0, inf),
    ("HalfNormal", {"scale": 0.8}, "HalfNormal", {"scale": 2.5},
     stats.halfnorm(scale=0.8), stats.halfnorm(scale=2.5), 0.0, inf),
    ("Uniform", {"low": 0.0, "high": 1.0}, "Uniform", {"low": -1.0, "high": 3.0},
     stats.uniform(0.0, 1.0), stats.uniform(-1.0, 4.0), 0.0, 1.0),
    ("InverseGamma", {"concentration": 3.0, "rate": 2.0}, "InverseGamma", {"concentration": 1.5, "rate": 0.5},
     stats.invgamma(3.0, scale=2.0), stats.invgamma(1.5, scale=0.5), 0.0, inf),
]:
    kl_case(pf, pp, qf, qp, kl_integral(p, q, low, high))

# Discrete pairs are exact sums.
for p, q in [(0.3, 0.8), (1e-6, 0.5)]:
    value = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    kl_case("Bernoulli", {"probs": p}, "Bernoulli", {"probs": q}, value)
kl_case("Bernoulli", {"logits": 2.0}, "Bernoulli", {"logits": -1.0},
        float(np.sum(special.rel_entr([special.expit(2.0), special.expit(-2.0)],
                                      [special.expit(-1.0), special.expit(1.0)]))))
pc = np.array([0.2, 0.3, 0.5])
qc = np.array([0.6, 0.3, 0.1])
kl_case("Categorical", {"probs": pc}, "Categorical", {"probs": qc}, float(np.sum(special.rel_entr(pc, qc))))
for lp_, lq_ in [(2.0, 5.0), (0.1, 0.1)]:
    ks = np.arange(0, 400)
    value = float(np.sum(stats.poisson(lp_).pmf(ks) * (stats.poisson(lp_).logpmf(ks) - stats.poisson(lq_).logpmf(ks))))
    kl_case("Poisson", {"rate": lp_}, "Poisson", {"rate": lq_}, value)

# Dirichlet and multivariate normal pairs from their textbook closed forms, written here
# independently of the Rust code.
a = np.array([1.0, 2.0, 3.0])
b = np.array([0.5, 0.5, 4.0])
dir_kl = (
    special.gammaln(a.sum()) - special.gammaln(a).sum() - special.gammaln(b.sum()) + special.gammaln(b).sum()
    + np.sum((a - b) * (special.digamma(a) - special.digamma(a.sum())))
)
kl_case("Dirichlet", {"concentration": a}, "Dirichlet", {"concentration": b}, dir_kl)

mu_q = np.array([0.0, 1.0, -1.0])
cov_q = np.array([[1.0, 0.2, 0.0], [0.2, 2.0, 0.5], [0.0, 0.5, 1.5]])
prec_q = np.linalg.inv(cov_q)
diff = mu_q - mvn_loc
mvn_kl = 0.5 * (
    np.trace(prec_q @ mvn_cov) + diff @ prec_q @ diff - 3 + np.linalg.slogdet(cov_q)[1] - np.linalg.slogdet(mvn_cov)[1]
)
# Monte Carlo is too noisy for 1e-8; as a sanity check compare with SciPy's entropy identity:
# KL = -H(p) - E_p[log q], and E_p[log q] has its own closed form.
cross = -0.5 * (3 * math.log(2 * math.pi) + np.linalg.slogdet(cov_q)[1] + np.trace(prec_q @ mvn_cov) + diff @ prec_q @ diff)
assert abs(mvn_kl - (-stats.multivariate_normal(mvn_loc, mvn_cov).entropy() - cross)) < 1e-12
kl_case("MultivariateNormal", {"loc": mvn_loc, "covariance_matrix": mvn_cov},
        "MultivariateNormal", {"loc": mu_q, "covariance_matrix": cov_q}, mvn_kl)
kl_case("MultivariateNormal", {"loc": mvn_loc, "scale_tril": mvn_tril},
        "MultivariateNormal", {"loc": mu_q, "precision_matrix": prec_q}, mvn_kl)

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "scripts/dist_reference.py", "cases": CASES, "kl": KL}, f, indent=1)
    f.write("\n")
print(f"wrote {len(CASES)} log-density cases and {len(KL)} KL cases to {os.path.normpath(OUT)}")
