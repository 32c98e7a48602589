"""Huey tasks: thin wrappers over services, primitive arguments only."""
from .huey_app import huey  # noqa: F401  (the consumer finds tasks through this module)
