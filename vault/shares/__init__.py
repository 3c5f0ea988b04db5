"""Read-only file sharing between users of one node (``/shares``)."""
