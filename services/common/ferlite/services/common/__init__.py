"""Plumbing every ferlite service shares: typed config, structured logs, metrics, the server."""
