"""What the NumPyro reference scripts share: running NUTS on a model and summarising each scalar
quantity the way bdl's tests compare with it.

Each scalar quantity is named as bdl's CSV columns (`mu.1`, `mu.2` for a vector). For each one the
summary holds the posterior mean and sd, the bulk ESS and split R-hat from NumPyro's diagnostics,
and the Monte Carlo standard errors: mcse_mean = sd / sqrt(ESS), and mcse_sd by the delta method,
sqrt(Var((x - mean)^2) / ESS_sq) / (2 sd) with ESS_sq the ESS of (x - mean)^2.

Imported by scripts/numpyro_mixture.py and scripts/numpyro_state_models.py (run from the
repository root, Python puts scripts/ on the import path).
"""
import json
import time

import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS


def columns(samples):
    """Each scalar quantity, named as bdl's CSV columns, as an array [chains, draws]."""
    out = {}
    for name, value in samples.items():
        value = np.asarray(value)
        if value.ndim == 2:
            out[name] = value
        else:
            flat = value.reshape(value.shape[0], value.shape[1], -1)
            shape = value.shape[2:]
            for k in range(flat.shape[2]):
                index = np.unravel_index(k, shape)
                out[name + "." + ".".join(str(i + 1) for i in index)] = flat[:, :, k]
    return out


def summary(draws):
    """Mean, sd, their Monte Carlo standard errors, bulk ESS and split R-hat of [chains, draws]."""
    mean, sd = float(draws.mean()), float(draws.std(ddof=1))
    ess = float(effective_sample_size(draws))
    squared = (draws - mean) ** 2
    ess_sq = float(effective_sample_size(squared))
    return {
        "mean": mean,
        "sd": sd,
        "mcse_mean": sd / np.sqrt(ess),
        "mcse_sd": float(np.sqrt(squared.var(ddof=1) / ess_sq) / (2 * sd)),
        "ess_bulk": ess,
        "r_hat": float(split_gelman_rubin(draws)),
    }


def run(name, model, seed, chains, warmup, samples, **data):
    """NUTS on `model(**data)`; the run's settings, divergences and each quantity's summary."""
    start = time.time()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, num_chains=chains,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), **data)
    drawn = mcmc.get_samples(group_by_chain=True)
    divergences = int(mcmc.get_extra_fields()["diverging"].sum())
    quantities = {key: summary(value) for key, value in columns(drawn).items()}
    print(name, f"{time.time() - start:.1f}s", divergences, "divergences")
    for key, value in quantities.items():
        print(f"  {key:10s} {value['mean']:10.4f} {value['sd']:9.4f} ess {value['ess_bulk']:8.0f}"
              f" r_hat {value['r_hat']:.4f}")
    return {
        "name": name,
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
        "seed": seed,
        "divergences": divergences,
        "quantities": quantities,
    }


def write(path, value):
    """`value` as indented JSON with a final newline."""
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")
