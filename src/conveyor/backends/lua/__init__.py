"""Lua scripts of the Redis backend (package data, read with importlib.resources)."""
