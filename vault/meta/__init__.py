"""Metadata in LMDB: typed tables of msgspec records with explicit transactions."""

from vault.meta.schema import SCHEMA_VERSION, TABLE_NAMES
from vault.meta.store import MetaStore, Table, Txn

__all__ = ["SCHEMA_VERSION", "TABLE_NAMES", "MetaStore", "Table", "Txn"]
