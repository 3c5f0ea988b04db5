"""Built-in chunk-store backends, registered in the ``vault.backends`` entry-point group."""
