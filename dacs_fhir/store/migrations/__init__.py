"""Alembic migrations of the store (package data: found through importlib.resources once installed)."""
