"""The package's API: compiling, diagnostics as exceptions, inference into InferenceData,
prediction, and chains split by offsets equal to the chains of one run."""

import numpy as np
import pandas as pd
import pytest

import bdl


def test_from_file_runs_a_bundled_model_on_its_own_data(root):
    model = bdl.Model.from_file(root / "models" / "eight_schools.bdl")
    idata = model.infer(method="nuts", chains=2, warmup=200, samples=100, seed=1)
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data"}
    assert idata.posterior["theta"].shape == (2, 100, 8)
    assert idata.sample_stats["diverging"].shape == (2, 100)
    assert idata.sample_stats["diverging"].dtype == bool
    assert idata.log_likelihood["y"].shape == (2, 100, 8)
    assert np.allclose(idata.observed_data["y"].values, [28, 8, -3, 7, -1, 1, 18, 12])


def test_a_bad_model_raises_its_rendered_diagnostic():
    with pytest.raises(bdl.BdlError) as raised:
        bdl.Model.from_string('model { let z = sample("z", Nromal(0, 1)) }', name="typo.bdl")
    message = str(raised.value)
    # The rendered diagnostic: its code, the file:line:col of the typo, and the suggestion.
    assert raised.value.codes, raised.value.args
    assert f"[{raised.value.codes[0]}] Error" in message
    assert "typo.bdl:1:29" in message, message
    assert "Nromal" in message and "Normal" in message


def test_bad_data_and_options_raise_with_codes(coin_source, regression):
    model = bdl.Model.from_string(coin_source)
    with pytest.raises(bdl.BdlError) as raised:
        model.infer(data={"x": regression["x"]}, chains=1, warmup=10, samples=10)
    assert "y" in str(raised.value)
    with pytest.raises(bdl.BdlError, match="chians"):
        model.infer(data=regression, chians=2)
    # Every method of `bdlc infer` runs; an unknown one has the command line's code and hint.
    with pytest.raises(bdl.BdlError, match=r"(?s)E0906.*did you mean `svi`"):
        model.infer(data=regression, method="svii")


def test_dicts_and_dataframes_give_the_same_draws(coin_source, regression):
    model = bdl.Model.from_string(coin_source)
    options = dict(method="nuts", chains=2, warmup=150, samples=50, seed=3)
    from_dict = model.infer(data=regression, **options)
    from_frame = model.infer(data=pd.DataFrame(regression), **options)
    assert np.array_equal(from_dict.posterior["b"].values, from_frame.posterior["b"].values)
    # The slope is found: |mean - 2| within 4 Monte Carlo standard errors plus the posterior's
    # own spread around the truth (sd of the posterior).
    b = from_dict.posterior["b"].values.ravel()
    assert abs(b.mean() - 2.0) < 4 * b.std()


def test_chains_run_with_offsets_equal_the_chains_of_one_run(coin_source, regression):
    model = bdl.Model.from_string(coin_source)
    options = dict(method="nuts", warmup=100, samples=40, seed=5)
    whole = model.infer_raw(regression, chains=4, **options)
    part = model.infer_raw(regression, chains=2, chain_offset=2, **options)
    for name, values in whole["posterior"].items():
        assert np.array_equal(values[2:], part["posterior"][name])
    for name, values in whole["sample_stats"].items():
        assert np.array_equal(values[2:], part["sample_stats"][name])


def test_an_ensemble_has_one_draw_per_member_and_predicts(coin_source, regression):
    model = bdl.Model.from_string(coin_source)
    idata = model.infer(data=regression, method="ensemble", members=3, steps=200, seed=2)
    assert idata.posterior["a"].shape == (3, 1)
    new = {"x": np.array([0.0, 0.5])}
    predicted = model.predict(idata, data=new, seed=1)
    assert predicted["y"].shape == (3, 2)


def test_arviz_summarises_the_result(coin_source, regression):
    import arviz as az

    model = bdl.Model.from_string(coin_source)
    idata = model.infer(data=regression, chains=2, warmup=150, samples=60, seed=4)
    summary = az.summary(idata, var_names=["a", "b"])
    assert list(summary.index) == ["a", "b"]


def test_the_log_likelihood_is_the_normal_density_of_each_observation(coin_source, regression):
    model = bdl.Model.from_string(coin_source)
    idata = model.infer(data=regression, chains=2, warmup=100, samples=30, seed=6, progress=False)
    post = idata.posterior
    mean = post["a"].values[..., None] + post["b"].values[..., None] * regression["x"]
    sigma = post["sigma"].values[..., None]
    # log N(y | mean, sigma), computed here independently of the Rust code.
    expected = -0.5 * ((regression["y"] - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    assert idata.log_likelihood["y"].shape == (2, 30, 30)
    assert np.allclose(idata.log_likelihood["y"].values, expected, rtol=1e-12, atol=1e-12)


def test_progress_is_reported_as_text_without_tqdm(coin_source, regression, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    model = bdl.Model.from_string(coin_source)
    model.infer(data=regression, chains=1, warmup=2000, samples=2000, seed=1, parallel=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines and lines[-1] == "bdl nuts: 4000/4000 iterations (100%)", lines


CTRL_C = """
import sys, time, numpy as np, bdl
model = bdl.Model.from_string(sys.argv[1])
x = np.linspace(-1, 1, 200)
print("ready", flush=True)
start = time.time()
try:
    model.infer(data={"x": x, "y": 2 * x}, chains=1, warmup=10**6, samples=10**6, progress=False)
except KeyboardInterrupt:
    print(f"interrupted after {time.time() - start:.1f}s", flush=True)
"""


def test_ctrl_c_stops_a_run_and_raises_keyboard_interrupt(coin_source):
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", CTRL_C, coin_source], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert out.startswith("interrupted after"), out


def test_the_gil_is_released_while_a_run_goes(coin_source, regression):
    import threading
    import time

    model = bdl.Model.from_string(coin_source)
    ticks = []
    runner = threading.Thread(
        target=model.infer_raw,
        kwargs=dict(data=regression, chains=1, warmup=10000, samples=10000, seed=2, parallel=False),
    )
    runner.start()
    while runner.is_alive():
        ticks.append(time.monotonic())
        time.sleep(0.001)
    runner.join()
    # Python code ran throughout the run: no gap longer than the native layer's polling period
    # (0.1 s) plus scheduling slack on a loaded machine.
    gaps = np.diff(ticks)
    assert len(ticks) > 10 and gaps.max() < 1.0, (len(ticks), gaps.max())


def test_the_notebook_example_fits_the_sine_ensemble_and_plots(root, tmp_path):
    import os
    import subprocess
    import sys

    example = root / "crates" / "bdl-py" / "examples" / "sine_ensemble.py"
    env = dict(os.environ, BDL_EXAMPLE_STEPS="300")
    done = subprocess.run([sys.executable, str(example), str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "held-out points inside the 90% band" in done.stdout
    assert (tmp_path / "predictive.png").stat().st_size > 0
    assert (tmp_path / "sigma_forest.png").stat().st_size > 0


NORMAL_MEAN = """
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


def test_sbc_ranks_of_nuts_are_uniform_on_a_conjugate_model():
    model = bdl.Model.from_string(NORMAL_MEAN)
    # The values of `y` only fix N: each replication replaces them by its simulation.
    result = model.sbc(60, data={"y": np.zeros(5)}, chains=1, warmup=100, samples=99, seed=11, progress=False)
    ranks = result["ranks"]["mu"]
    assert result["draws"] == 99 and ranks.shape == (60,)
    assert ranks.min() >= 0 and ranks.max() <= 99 and len(set(ranks.tolist())) > 20
    # Four bins of 25 ranks each (0-24, ..., 75-99), 15 expected per bin under uniformity. The
    # Pearson statistic has 3 degrees of freedom; 16.27 is its 0.999 quantile, so a correct
    # sampler fails this seeded check with probability 0.001.
    observed = np.bincount(ranks // 25, minlength=4)
    chi_square = ((observed - 15.0) ** 2 / 15.0).sum()
    assert chi_square < 16.27, (observed, chi_square)
    assert result["divergent"].shape == (60,)


def test_sbc_refuses_an_ensemble_and_a_model_without_a_declaration_per_observation():
    model = bdl.Model.from_string(NORMAL_MEAN)
    with pytest.raises(bdl.BdlError, match="E0936"):
        model.sbc(2, data={"y": np.zeros(3)}, method="ensemble", progress=False)
    renamed = bdl.Model.from_string(NORMAL_MEAN.replace('observe("y"', 'observe("obs"'))
    with pytest.raises(bdl.BdlError) as raised:
        renamed.sbc(2, data={"y": np.zeros(3)}, warmup=20, samples=20, progress=False)
    assert raised.value.codes == ["E0939"] and "`obs`" in str(raised.value)
