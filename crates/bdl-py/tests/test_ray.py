"""Chains and members as Ray tasks merged into one InferenceData equal a single-process run
with the same seed, bit for bit."""

import numpy as np
import pytest

import bdl

ray = pytest.importorskip("ray")
import bdl.ray  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_eight_chains_over_ray_equal_the_single_process_draws(local_ray, root):
    model = bdl.Model.from_file(root / "models" / "eight_schools.bdl")
    options = dict(method="nuts", warmup=150, samples=50, seed=9)
    single = model.infer(chains=8, **options)
    spread = bdl.ray.infer(model, chains=8, chains_per_task=1, **options)
    for name in single.posterior.data_vars:
        assert np.array_equal(single.posterior[name].values, spread.posterior[name].values)
    for name in single.sample_stats.data_vars:
        assert np.array_equal(single.sample_stats[name].values, spread.sample_stats[name].values)
    for name in single.log_likelihood.data_vars:
        assert np.array_equal(single.log_likelihood[name].values, spread.log_likelihood[name].values)
    assert list(spread.posterior.chain.values) == list(range(8))


def test_ensemble_members_over_ray_equal_the_single_process_members(local_ray, coin_source, regression):
    model = bdl.Model.from_string(coin_source)
    options = dict(method="ensemble", steps=150, seed=4)
    single = model.infer(data=regression, members=4, **options)
    spread = bdl.ray.infer(model, data=regression, members=4, chains_per_task=2, **options)
    for name in single.posterior.data_vars:
        assert np.array_equal(single.posterior[name].values, spread.posterior[name].values)


def test_split_covers_every_unit_once():
    assert bdl.ray.split(8, 3) == [(0, 3), (3, 3), (6, 2)]
