"""Benchmarks: the node against its peers and against the machine's own limits (``python -m bench``)."""
