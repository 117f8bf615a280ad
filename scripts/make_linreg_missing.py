"""Writes models/data/linreg_missing.csv: a linear regression y = 1 + 2 x + noise (sd 0.5) on 40
rows, with the responses of every fifth row (and two more) missing. A missing response is written
as 0 and its `observed` column as 0; the model masks those rows out of the likelihood.

Run from the repository root: python3 scripts/make_linreg_missing.py
"""

import random

rng = random.Random(18)
rows = []
missing = {3, 11}
for i in range(40):
    x = round(rng.uniform(-2.0, 2.0), 6)
    y = round(1.0 + 2.0 * x + rng.gauss(0.0, 0.5), 6)
    seen = 0 if i % 5 == 4 or i in missing else 1
    rows.append((x, y if seen else 0.0, seen))

with open("models/data/linreg_missing.csv", "w") as out:
    out.write("x,y,observed\n")
    for x, y, seen in rows:
        out.write(f"{x:.6f},{y:.6f},{seen}\n")
