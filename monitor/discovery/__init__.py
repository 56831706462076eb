"""Discovery of failing slices nobody declared (issue 17; docs/discovery.md).

``coder`` (features → bounded codes and slice names), ``counts`` (mergeable errors and
records per conjunction), ``search`` (SliceLine score, tests, BH, top-k), ``stage`` (per
model: windows and the rolling horizon)."""
