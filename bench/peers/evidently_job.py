"""Evidently 0.7's DataDriftPreset on the 20 feature columns of two Parquet files (run by
bench/peers/run.py in the peers' venv). Prints the drifted columns, comma-separated."""

from __future__ import annotations

import sys

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main(ref_path: str, cur_path: str) -> None:
    ref, cur = (pd.read_parquet(p).filter(like="features.") for p in (ref_path, cur_path))
    numeric = [c for c in ref.columns if ref[c].dtype.kind == "f"]
    categorical = [c for c in ref.columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, definition),
                                               Dataset.from_pandas(ref, definition))
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        name = metric.get("metric_name", "")
        if name.startswith("ValueDrift(column=") and metric.get("value") is not None:
            column = name.split("column=", 1)[1].split(",", 1)[0].rstrip(")")
            threshold = float(name.split("threshold=", 1)[1].split(")", 1)[0].split(",")[0]) \
                if "threshold=" in name else None
            value = float(metric["value"])
            # Evidently's drift rule: a distance at or above its threshold (p-values below)
            method = name.split("method=", 1)[1] if "method=" in name else ""
            is_p = "p_value" in method
            if threshold is not None and ((value < threshold) if is_p else (value >= threshold)):
                drifted.append(column.removeprefix("features."))
    print(", ".join(sorted(drifted)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
