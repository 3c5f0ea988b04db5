"""HTTP edge: decoding with msgspec, auth, and one mapping from errors to the envelope."""
