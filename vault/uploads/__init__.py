"""Chunked, resumable, verified uploads."""
