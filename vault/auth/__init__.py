"""Accounts, passwords, access and refresh tokens, and login rate limiting."""
