"""Device gateway mode: device shadows (sans-I/O model in `shadow`), their Redis store, the
HTTP shadow API, the MQTT bridge and telemetry ingestion. See docs/devices.md."""
