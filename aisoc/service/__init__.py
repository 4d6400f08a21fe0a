"""`aisoc serve`: the forwarder service (receiver -> spool -> sinks -> detection -> outputs)."""
