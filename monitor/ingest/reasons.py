"""Every reason a record can be rejected for, with its meaning (docs/record-format.md
lists the same; a test checks that each reason the code emits is in both).

A dead letter whose reject carries no specific ``detail`` gets the meaning of its reason
(:func:`describe`), so no dead-letter line has an empty ``detail``.

>>> describe("missing_field:id")
'no prediction id at the schema path (label and feature records join on it)'
>>> describe("nan_score")
'the score is NaN or infinite'
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    "invalid_json": "the line is not JSON",
    "empty_line": "a blank line or an empty message",
    "too_large": "longer than source.max_record_bytes; the first 4 KiB are kept",
    "bad_csv_row": "a CSV row with another number of fields than the header, or unparsable",
    "bad_encoding": "a CSV row that is not UTF-8",
    "bad_tags": "a CSV or Parquet tags cell that starts with '[' but is not a JSON list of "
                "strings",
    "read_error": "the rest of the file could not be read",
    "not_an_object": "JSON, but not an object",
    "missing_field:model": "no model at the schema path, and the spec has several models",
    "missing_field:time": "no event time at the schema path",
    "missing_field:id": "no prediction id at the schema path (label and feature records "
                        "join on it)",
    "missing_field:label": "a label record without a label at the schema path",
    "null_model": "the model is null",
    "unknown_model": "the model is not in the spec",
    "bad_time": "the time cannot be parsed or lies outside 1677-09-21 … 2262-04-11",
    "future_time": "the time is more than source.max_future ahead of the wall clock",
    "score_out_of_range": "a probability score outside [0, 1]",
    "wrong_type:score": "the score is not a number",
    "wrong_type:value": "the predicted value is not a number",
    "wrong_type:features": "the features are not a mapping",
    "nan_score": "the score is NaN or infinite",
    "nan_value": "the predicted value is NaN or infinite",
    "missing_prediction": "outcome ok but no score, class or value",
    "bad_outcome": "outcome not one of ok, error, timeout, fallback",
    "late": "the record's window had already closed (allowed_lateness passed)",
    "processing_error": "processing the record raised; the state before it was restored",
}


def describe(reason: str) -> str:
    """The meaning of ``reason`` (``""`` for a reason not in :data:`REASONS`)."""
    return REASONS.get(reason, "")
