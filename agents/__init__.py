"""Faust agents, one module per agent; importing this package registers them on ``stream.app.app``."""
