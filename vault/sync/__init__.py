"""Delta sync: the per-user change journal and sync tokens."""
