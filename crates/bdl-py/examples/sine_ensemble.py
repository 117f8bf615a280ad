# %% [markdown]
# # A deep ensemble of a Bayesian network from Python
#
# Fits the bundled `models/sine_ensemble.bdl` (a 1-100-1 ReLU network on noisy sine data) as an
# ensemble of 8 MAP members, predicts on held-out inputs, and plots with ArviZ and matplotlib.
# Run it as a script (`python crates/bdl-py/examples/sine_ensemble.py OUT_DIR`) or paste the
# cells into a notebook; in a notebook the progress bar is tqdm's widget.

# %%
import os
import pathlib
import sys

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bdl

root = pathlib.Path(__file__).resolve().parents[3]
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)
steps = int(os.environ.get("BDL_EXAMPLE_STEPS", "3000"))

# %% The model reads its training data from models/data/sine.csv itself.
model = bdl.Model.from_file(root / "models" / "sine_ensemble.bdl")
idata = model.infer(method="ensemble", members=8, steps=steps, lr=0.01, seed=1)
print(idata)

# %% Predictions on held-out inputs: one draw of y per member.
test = pd.read_csv(root / "models" / "data" / "sine_test.csv")
predicted = model.predict(idata, data={"x": test["x"].to_numpy()}, seed=2)["y"]
low, high = np.percentile(predicted, [5, 95], axis=0)

# %% Plots: the members' noise scale, and the predictive band over the held-out data.
az.plot_forest(idata, var_names=["sigma"], combined=False)
plt.savefig(out / "sigma_forest.png", dpi=80)
figure, axes = plt.subplots(figsize=(6, 3))
axes.fill_between(test["x"], low, high, alpha=0.3, label="90% predictive band")
axes.plot(test["x"], test["y"], ".", markersize=3, label="held-out data")
axes.legend()
figure.savefig(out / "predictive.png", dpi=80)
inside = np.mean((test["y"] >= low) & (test["y"] <= high))
print(f"sigma per member: {np.round(idata.posterior['sigma'].values.ravel(), 3)}")
print(f"held-out points inside the 90% band: {inside:.0%}")
