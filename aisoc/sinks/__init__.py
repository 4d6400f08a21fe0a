"""Sinks: where normalized events go (Elasticsearch, the embedded store), and the dead-letter store."""
