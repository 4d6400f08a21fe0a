"""Analyzers (stateful transforms): they watch normalized events and emit signal events.

A single raw record cannot say "this key's token use is 6 sigma above its own baseline"; an
analyzer keeps the window and the baseline (persisted, so a restart keeps them) and emits an event
with `event.kind: metric`, `aisoc.signal.name`, `.value`, `.sample_size`, `.entity`, which rules
threshold on. Each signal's formula, window and default threshold are documented in the registry.
"""
