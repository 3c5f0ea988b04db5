"""Metadata in LMDB: typed tables of msgspec records with explicit transactions."""

from vault.meta.schema import SCHEMA_VERSION, TABLE_NAMES
from vault.meta.store import META, MetaStore, MetaStoreError, RawTable, Table, Txn, Upgrades

__all__ = [
    "META",
    "SCHEMA_VERSION",
    "TABLE_NAMES",
    "MetaStore",
    "MetaStoreError",
    "RawTable",
    "Table",
    "Txn",
    "Upgrades",
]
