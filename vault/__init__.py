"""MegaVault node: a self-hosted storage node that phone apps sync with."""

__version__ = "0.1.0"
