"""Splits models/data/iris.csv as the reference workload does (test rows: index % 4 == 0) and
standardises the four features with the training rows' mean and (population) standard deviation.

usage: python3 scripts/make_iris_split.py models/data
"""
import csv
import math
import os
import sys

directory = sys.argv[1] if len(sys.argv) > 1 else "models/data"
with open(os.path.join(directory, "iris.csv")) as handle:
    reader = csv.reader(handle)
    header = next(reader)
    rows = [[float(v) for v in row[:4]] + [int(row[4])] for row in reader]

train = [row for i, row in enumerate(rows) if i % 4 != 0]
test = [row for i, row in enumerate(rows) if i % 4 == 0]
means = [sum(r[j] for r in train) / len(train) for j in range(4)]
sds = [math.sqrt(sum((r[j] - means[j]) ** 2 for r in train) / len(train)) for j in range(4)]

for name, part in (("iris_train.csv", train), ("iris_test.csv", test)):
    with open(os.path.join(directory, name), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in part:
            writer.writerow([repr((row[j] - means[j]) / sds[j]) for j in range(4)] + [row[4]])
