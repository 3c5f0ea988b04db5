"""Registered devices: their records, settings and management."""
