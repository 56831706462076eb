"""Files generated from the spec: Grafana dashboards with provisioning, Prometheus alerting rules.

- :func:`write_dashboards` — operations + per-model dashboards and Grafana provisioning;
- :func:`write_prom_rules` — Prometheus alerting rules and their ``promtool`` test file.
"""

from monitor.generate.output import write_dashboards
from monitor.generate.promrules import write_prom_rules

__all__ = ["write_dashboards", "write_prom_rules"]
