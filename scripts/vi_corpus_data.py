"""Simulated data of the variational-inference corpus in models/corpus/.

Ordinary posteriors as a new user meets them: regressions and GLMs with predictors on their
natural scales (square feet, a calendar year near 2,000, salaries in dollars, doses in mg,
temperatures in °F), a hierarchical model, and AR(1) and ARMA(1,1) series. Every data set is
drawn from one seeded NumPy generator, so the files are reproducible.

usage: python3 scripts/vi_corpus_data.py models/corpus/data
"""
import json
import os
import sys

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else "models/corpus/data"
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(17)


def write(name, data):
    clean = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(clean, f)
        f.write("\n")


def r(x, digits=4):
    return np.round(x, digits)


# 1. House prices (thousands of dollars) against living area (square feet).
n = 80
area = r(rng.uniform(600, 3200, n), 0)
write("house_prices", {"N": n, "area": area, "price": r(82 + 0.11 * area + rng.normal(0, 18, n), 2)})

# 2. A temperature anomaly against the calendar year: the year near 2,000 as the predictor.
n = 40
year = np.arange(1981, 1981 + n).astype(float)
write("temperature_year", {"N": n, "year": year, "anomaly": r(-39.6 + 0.02 * year + rng.normal(0, 0.12, n), 3)})

# 3. Salaries in dollars against experience and education (years): noise sd near 18,900.
n = 120
experience = r(rng.uniform(0, 35, n), 1)
education = r(rng.integers(10, 21, n).astype(float), 0)
salary = r(21000 + 1450 * experience + 2100 * education + rng.normal(0, 18900, n), 0)
write("salaries", {"N": n, "experience": experience, "education": education, "salary": salary})

# 4. A logistic GLM: response to a dose (mg) and the patient's age (years).
n = 200
dose = r(rng.uniform(0, 500, n), 0)
age = r(rng.uniform(20, 80, n), 0)
eta = -4.0 + 0.012 * dose + 0.03 * age
write("dose_response", {"N": n, "dose": dose, "age": age, "y": rng.binomial(1, 1 / (1 + np.exp(-eta))).tolist()})

# 5. A Poisson GLM: daily counts against the temperature (°F).
n = 90
temperature = r(rng.uniform(30, 100, n), 1)
write("counts_temperature", {"N": n, "temperature": temperature,
                             "count": rng.poisson(np.exp(0.5 + 0.025 * temperature)).tolist()})

# 6. A hierarchical model: test scores (around 100) in 8 schools, 15 pupils each.
j, per = 8, 15
school_means = 100 + rng.normal(0, 6, j)
school = np.repeat(np.arange(j), per)
write("school_scores", {"N": j * per, "J": j, "school": school.tolist(),
                        "score": r(school_means[school] + rng.normal(0, 15, j * per), 1)})

# 7. Heights in centimetres: a mean far from zero.
n = 60
write("heights", {"N": n, "height": r(rng.normal(171.5, 9.5, n), 1)})

# 8. A quadratic trend on a predictor from 0 to 100 (its square reaches 10,000).
n = 70
x = r(rng.uniform(0, 100, n), 1)
write("quadratic_growth", {"N": n, "x": x, "y": r(12 + 0.8 * x - 0.006 * x**2 + rng.normal(0, 3, n), 2)})

# 9. An AR(1) series around 50.
t = 150
y = np.empty(t)
y[0] = 50 + rng.normal(0, 4)
for i in range(1, t):
    y[i] = 50 + 0.7 * (y[i - 1] - 50) + rng.normal(0, 2.5)
write("ar1_series", {"T": t, "y": r(y, 3)})

# 10. An ARMA(1,1) series around 10: y_t = mu + phi (y_{t-1} - mu) + theta e_{t-1} + e_t. The
# model writes the innovations as e = M u with M_ts = (-theta)^(t - s) for s <= t, so it needs
# the lag matrix K_ts = t - s and the lower-triangular mask of ones (the data of the
# conditional likelihood given y_0 and e_0 = 0).
t = 100
e = rng.normal(0, 1.5, t)
y = np.empty(t)
y[0] = 10 + e[0]
for i in range(1, t):
    y[i] = 10 + 0.6 * (y[i - 1] - 10) + 0.4 * e[i - 1] + e[i]
m = t - 1
lags = np.subtract.outer(np.arange(m), np.arange(m))
mask = (lags >= 0).astype(float)
write("arma11_series", {"T": t, "M": m, "y": r(y, 3), "lag": (lags * mask).tolist(), "mask": mask.tolist(),
                        "alternating": (mask * (-1.0) ** (lags * mask)).tolist()})

# 11. A varying-intercept regression (non-centred): radon-like log levels in 10 counties
# against the floor (0 basement, 1 ground) and the county's uranium level (ppm, 0.5 to 3).
c, per = 10, 12
uranium = r(rng.uniform(0.5, 3.0, c), 2)
county = np.repeat(np.arange(c), per)
floor = rng.integers(0, 2, c * per).astype(float)
county_effect = rng.normal(0, 0.3, c)
level = 1.2 + 0.6 * uranium[county] - 0.7 * floor + county_effect[county] + rng.normal(0, 0.7, c * per)
write("radon_counties", {"N": c * per, "C": c, "county": county.tolist(), "floor": floor.tolist(),
                         "uranium": uranium.tolist(), "level": r(level, 3)})
print(f"wrote {OUT}")
