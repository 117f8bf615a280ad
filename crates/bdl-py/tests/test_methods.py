"""Every method of ``bdlc infer`` from Python, run by the command line's own drivers, and the
model's ``infer { }`` block as the defaults of ``Model.infer``."""

import json

import numpy as np
import pytest

import bdl

# A conjugate model: mu ~ Normal(0, 1), y_i ~ Normal(mu, 1). With y = (0.5, 1.5, 1.0, 2.0) the
# posterior is Normal(1, sd 1/sqrt(5) = 0.447).
CONJUGATE = """
data {
    y: vector[N]
}

model {
    let mu = sample("mu", Normal(0, 1))
    plate("data", N) {
        observe("y", Normal(mu, 1), y)
    }
}
"""
DATA = {"y": np.array([0.5, 1.5, 1.0, 2.0])}
POSTERIOR_MEAN, POSTERIOR_SD = 1.0, 1 / np.sqrt(5)


def normal_log_density(y, mu):
    return -0.5 * np.log(2 * np.pi) - 0.5 * (y - mu) ** 2


# Each method with options that keep it quick; `chains` is how many chains its draws form.
METHODS = [
    ("svi", {"guide": "diag", "samples": 400, "seed": 1}, 1),
    ("svi", {"guide": "mvn", "samples": 400, "seed": 1}, 1),
    ("svi", {"guide": "lowrank", "samples": 400, "seed": 1}, 1),
    ("svi", {"guide": "iaf", "samples": 400, "seed": 1}, 1),
    ("laplace", {"samples": 400, "seed": 1}, 1),
    ("pathfinder", {"samples": 400, "seed": 1}, 1),
    ("exact", {"samples": 400, "seed": 1}, 1),
    ("gibbs", {"chains": 2, "warmup": 200, "samples": 200, "seed": 1}, 2),
    ("nuts", {"chains": 2, "warmup": 200, "samples": 200, "seed": 1, "init": "uniform"}, 2),
]


@pytest.mark.parametrize("method,options,chains", METHODS, ids=[f"{m}-{o.get('guide', '')}" for m, o, _ in METHODS])
def test_each_method_returns_inference_data_near_the_exact_posterior(method, options, chains):
    model = bdl.Model.from_string(CONJUGATE)
    idata = model.infer(DATA, method=method, progress=False, **options)
    assert {"posterior", "log_likelihood", "observed_data"} <= set(idata.groups())
    assert idata.attrs["method"] == method
    mu = idata.posterior["mu"].values
    assert mu.shape[0] == chains
    draws = mu.size
    # Every method here is exact or a Gaussian fit of a Gaussian posterior: the mean of its
    # draws is within 5 Monte Carlo standard errors of the exact mean (MCMC draws are
    # autocorrelated: their standard error uses a tenth of the draws), plus 0.05 for the fit.
    effective = draws / 10 if method in ("nuts", "gibbs") else draws
    tolerance = 5 * POSTERIOR_SD / np.sqrt(effective) + 0.05
    assert abs(mu.mean() - POSTERIOR_MEAN) < tolerance, (mu.mean(), tolerance)
    # The pointwise log-likelihood is the Normal density at each draw.
    expected = normal_log_density(DATA["y"], mu[..., None])
    assert np.allclose(idata.log_likelihood["y"].values, expected, atol=1e-9)


@pytest.mark.parametrize("method", ["nuts", "hmc"])
def test_samplers_through_the_command_line_drivers_have_statistics(method):
    model = bdl.Model.from_string(CONJUGATE)
    # `init` is a command-line option only, so the command line's driver runs the chains.
    idata = model.infer(DATA, method=method, progress=False, chains=2, warmup=100, samples=50,
                        seed=2, init="uniform")
    assert idata.sample_stats["energy"].shape == (2, 50)
    assert idata.sample_stats["diverging"].dtype == bool


def test_map_is_the_mode_and_losses_are_returned():
    model = bdl.Model.from_string(CONJUGATE)
    raw = model.infer_raw(DATA, method="map")
    assert raw["method"] == "map"
    assert raw["posterior"]["mu"].shape == (1, 1)
    assert abs(raw["posterior"]["mu"][0, 0] - POSTERIOR_MEAN) < 1e-3
    assert raw["losses"].ndim == 1 and raw["losses"].size > 0
    assert isinstance(raw["facts"], dict)


@pytest.mark.parametrize("method", ["sgld", "sghmc"])
def test_stochastic_gradient_samplers_run(method):
    model = bdl.Model.from_string(CONJUGATE)
    idata = model.infer(DATA, method=method, progress=False, chains=2, samples=100, seed=3)
    assert idata.posterior["mu"].shape == (2, 100)
    assert np.isfinite(idata.posterior["mu"].values).all()


def test_multiswag_is_an_ensemble_with_swag(root):
    model = bdl.Model.from_file(root / "models" / "sine_ensemble.bdl")
    idata = model.infer(method="multiswag", progress=False, members=2, steps=200, seed=4)
    assert idata.attrs["method"] == "ensemble"
    assert json.loads(idata.attrs["facts"])  # the ensemble's facts
    assert idata.posterior.sizes["draw"] >= 1


def test_the_infer_block_chooses_the_method_and_its_settings():
    model = bdl.Model.from_string(CONJUGATE + "\ninfer {\n    method = laplace\n    samples = 30\n}\n")
    assert model.infer_block == {"method": "laplace", "samples": 30}
    idata = model.infer(DATA, progress=False)
    assert idata.attrs["method"] == "laplace"
    assert idata.posterior["mu"].shape == (1, 30)
    # A keyword overrides the block, as a flag does on the command line.
    assert model.infer(DATA, method="map", progress=False).attrs["method"] == "map"


def test_the_infer_block_sets_the_package_samplers_defaults():
    model = bdl.Model.from_string(CONJUGATE + "\ninfer {\n    chains = 3\n    samples = 20\n    warmup = 50\n}\n")
    idata = model.infer(DATA, progress=False)
    assert idata.attrs["method"] == "nuts"
    assert idata.posterior["mu"].shape == (3, 20)
    assert model.infer(DATA, progress=False, samples=10).posterior["mu"].shape == (3, 10)


def test_options_the_command_line_refuses_raise_with_codes():
    model = bdl.Model.from_string(CONJUGATE)
    with pytest.raises(bdl.BdlError) as unknown:
        model.infer(DATA, method="svi", colour="red")
    assert unknown.value.codes == ["E0937"]
    assert "--colour" in str(unknown.value)
    with pytest.raises(bdl.BdlError) as misplaced:
        model.infer(DATA, method="map", max_depth=3)
    assert misplaced.value.codes
    with pytest.raises(bdl.BdlError) as method:
        model.infer(DATA, method="magic")
    assert method.value.codes
