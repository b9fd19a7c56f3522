"""A tiny geometry package used by `maestro demo`."""
