"""Delta sync: sync tokens, what changed since one, local changes and their conflicts."""
