"""Pulse: the `pulse` command line, and the generated wire code (pulse.v1)."""
