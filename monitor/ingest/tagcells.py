"""Tags in CSV and Parquet cells: a cell holding JSON list text (``["new_user", "promo"]``)
is that list of tags; any other text is one tag. Text that starts with ``[`` but is not a
JSON list of strings is a reject (``bad_tags``), never a tag made of its characters.

>>> records = [{"tags": '["a", "b"]'}, {"tags": "solo"}, {"tags": "[oops"}]
>>> good, rejects = split_tag_cells(records, "tags")
>>> [r["tags"] for r in good], [(i, detail[:26]) for i, _record, detail in rejects]
([['a', 'b'], 'solo'], [(2, 'tags cell is not a JSON li')])
"""

from __future__ import annotations

from typing import Any

import orjson


def _holder(record: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    *parents, last = path.split(".")
    node: Any = record
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), last


def split_tag_cells(records: list[dict[str, Any]], path: str
                    ) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any], str]]]:
    """``records`` with JSON-list tag cells parsed, and the malformed ones with their index
    in ``records`` and why (the decoder rejects them as ``bad_tags``)."""
    good: list[dict[str, Any]] = []
    rejects: list[tuple[int, dict[str, Any], str]] = []
    for i, r in enumerate(records):
        holder, key = _holder(r, path) if isinstance(r, dict) else (None, "")
        cell = holder.get(key) if holder is not None else None
        if isinstance(cell, str) and cell.lstrip().startswith("["):
            try:
                tags = orjson.loads(cell)
            except orjson.JSONDecodeError as exc:
                tags, why = None, str(exc)
            else:
                why = "items must be strings"
            if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
                rejects.append((i, r, f"{path} cell is not a JSON list of strings: "
                                   f"{cell[:200]!r} ({why})"))
                continue
            holder[key] = tags
        good.append(r)
    return good, rejects
