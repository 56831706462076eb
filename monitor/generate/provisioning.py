"""Grafana file provisioning: the Prometheus datasource and a file dashboard provider.

The datasource's ``uid`` is :data:`~monitor.generate.panels.DATASOURCE_UID`, the uid every
generated panel and variable refers to.
"""

from __future__ import annotations

from typing import Any

from monitor.generate.panels import DATASOURCE_UID

DATASOURCE_NAME = "slicewatch-prometheus"
DEFAULT_PROMETHEUS_URL = "http://localhost:9090"
DEFAULT_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/slicewatch"


def datasource(prometheus_url: str = DEFAULT_PROMETHEUS_URL,
               scrape_interval: str = "15s") -> dict[str, Any]:
    """``provisioning/datasources/slicewatch.yaml``."""
    return {"apiVersion": 1, "datasources": [{
        "name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": "prometheus",
        "access": "proxy", "url": prometheus_url, "isDefault": False, "editable": False,
        "jsonData": {"timeInterval": scrape_interval, "httpMethod": "POST"}}]}


def dashboard_provider(path: str = DEFAULT_DASHBOARDS_PATH) -> dict[str, Any]:
    """``provisioning/dashboards/slicewatch.yaml``: load every JSON file under ``path``.

    ``path`` is where Grafana sees the generated ``dashboards/`` directory (mount or copy it
    there).
    """
    return {"apiVersion": 1, "providers": [{
        "name": "slicewatch", "orgId": 1, "folder": "slicewatch", "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 30,
        "options": {"path": path, "foldersFromFilesStructure": False}}]}
