"""A plain scipy loop over the 20 feature columns of two Parquet files (run by
bench/peers/run.py): ``ks_2samp`` for numeric columns (all rows), ``chi2_contingency`` of the
value counts for categorical ones; drifted at p < 0.05 / 20 (Bonferroni). Prints the drifted
columns, comma-separated."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import stats


def main(ref_path: str, cur_path: str) -> None:
    ref, cur = (pd.read_parquet(p).filter(like="features.") for p in (ref_path, cur_path))
    alpha = 0.05 / len(ref.columns)
    drifted = []
    for c in ref.columns:
        if ref[c].dtype.kind == "f":
            p = stats.ks_2samp(ref[c].to_numpy(), cur[c].to_numpy()).pvalue
        else:
            table = pd.concat([ref[c].value_counts(), cur[c].value_counts()], axis=1).fillna(0)
            p = stats.chi2_contingency(np.asarray(table, dtype=np.float64).T).pvalue
        if p < alpha:
            drifted.append(c.removeprefix("features."))
    print(", ".join(sorted(drifted)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
