"""Shared fixtures: the repository root and a small model with its data as NumPy arrays."""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]

COIN = """
data {
    x: vector[N]
    y: vector[N]
}

model {
    let a = sample("a", Normal(0, 1))
    let b = sample("b", Normal(0, 1))
    let sigma = sample("sigma", HalfNormal(1))
    plate("data", N) {
        observe("y", Normal(a + b * x, sigma), y)
    }
}
"""


@pytest.fixture
def root():
    return ROOT


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 30)
    y = 0.5 + 2.0 * x + 0.3 * rng.standard_normal(30)
    return {"x": x, "y": y}


@pytest.fixture
def coin_source():
    return COIN
