"""Grafana dashboards, Prometheus alerting rules and Pushgateway pushes, from the spec.

- :func:`write_dashboards` — operations + per-model dashboards and Grafana provisioning;
- :func:`write_prom_rules` — Prometheus alerting rules and their ``promtool`` test file;
- :func:`push_to_gateway` — a batch run's final metrics to a Pushgateway.
"""

from monitor.grafana.output import write_dashboards
from monitor.grafana.promrules import write_prom_rules
from monitor.grafana.push import push_to_gateway

__all__ = ["push_to_gateway", "write_dashboards", "write_prom_rules"]
