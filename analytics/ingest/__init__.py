"""The ingest boundary: validate what arrives, then write it through one path (`writer`)."""
