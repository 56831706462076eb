"""What Prometheus reads: snapshots, the collector, HTTP server, metric catalogue, Pushgateway."""
