"""Notifications: records of events for a user's devices (delivery comes with push providers)."""
