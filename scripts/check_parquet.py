#!/usr/bin/env python3
"""Reads a Parquet file of draws written by bdlc with pyarrow and pandas, independently of bdl.

    python3 scripts/check_parquet.py FILE.parquet [--csv FILE.csv] [--example] [--json OUT]

Prints (or writes to OUT) a JSON report: the columns, the number of rows, the key-value metadata
and the schema as pyarrow sees them. With --csv, every column that the CSV (CmdStan layout,
`#` comment lines) also has must hold the same values to 6 significant digits (the CSV's
precision). With --example, the file must hold the example values of the writer's unit test
(`crates/bdlc/src/parquet.rs`, recomputed here), exactly; the committed report
`crates/bdlc/tests/data/draws_small.pyarrow.json` is this script's output on the committed
example file. Needs pyarrow and pandas.
"""

import argparse
import json
import math
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def example_values():
    rows = []
    for row in range(40):
        r = float(row)
        rows.append([r * 0.5 - 3.0, math.exp(r * 0.1), -r / 7.0, 1e300 / (r + 1.0)])
    return ["mu", "sigma", "theta.1", "theta.2"], rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--csv")
    parser.add_argument("--example", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()

    table = pq.read_table(args.file)
    metadata = pq.read_metadata(args.file)
    frame = pd.read_parquet(args.file)
    schema_types = sorted({str(field.type) for field in table.schema})
    key_values = {
        key.decode(): value.decode()
        for key, value in (table.schema.metadata or {}).items()
    }
    report = {
        "reader": f"pyarrow {pa.__version__}, pandas {pd.__version__}",
        "columns": table.column_names[:20],
        "n_columns": table.num_columns,
        "n_rows": table.num_rows,
        "row_groups": metadata.num_row_groups,
        "types": schema_types,
        "created_by": metadata.created_by,
        "metadata": key_values,
        "pandas_shape": list(frame.shape),
    }
    failures = []
    if args.example:
        names, rows = example_values()
        if table.column_names != names:
            failures.append(f"columns {table.column_names} != {names}")
        for index, name in enumerate(names):
            values = table.column(name).to_pylist()
            expected = [row[index] for row in rows]
            if values != expected:
                failures.append(f"column {name} differs")
        report["values"] = {name: table.column(name).to_pylist() for name in names}
    if args.csv:
        csv = pd.read_csv(args.csv, comment="#")
        shared = [c for c in csv.columns if c in frame.columns]
        report["csv_columns_compared"] = len(shared)
        if len(csv) != len(frame):
            failures.append(f"{len(csv)} CSV rows against {len(frame)} Parquet rows")
        else:
            worst = 0.0
            for column in shared:
                a = csv[column].to_numpy()
                b = frame[column].to_numpy()
                scale = abs(b).max() if len(b) else 0.0
                scale = scale if scale > 0 else 1.0
                worst = max(worst, float((abs(a - b) / scale).max()))
            report["csv_worst_relative_difference"] = worst
            if worst > 1e-5:
                failures.append(f"values differ from the CSV by {worst:.3g}")
    report["failures"] = failures
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")
    print(text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
