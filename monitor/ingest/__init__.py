"""Ingest: sources (files, stdin, Kafka) → raw chunks → record batches; rejects → dead letters."""

from monitor.ingest.source import Chunk, SourceError

__all__ = ["Chunk", "SourceError"]
