"""Detection: the embedded SQLite store and engine, alerts."""
