"""aisoc: bring AI systems into the security operations centre."""

__version__ = "0.1.0"
