"""Pulse ingest service: gRPC telemetry stream -> validation -> buffers -> ClickHouse."""
