"""Metadata in LMDB: typed tables of msgspec records with explicit transactions."""

from vault.meta.store import MetaStore, Table, Txn
from vault.meta.schema import SCHEMA_VERSION, TABLE_NAMES

__all__ = ["SCHEMA_VERSION", "TABLE_NAMES", "MetaStore", "Table", "Txn"]
