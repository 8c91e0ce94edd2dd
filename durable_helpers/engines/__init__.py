"""Engines that query an export folder (``TaskHub.export``) without loading it into pandas.

- ``durable_helpers.engines.duckdb``: DuckDB, embedded; the default on one machine.
- ``durable_helpers.engines.dask``: Dask, for data that outgrows one machine (a cluster);
  install the ``distributed`` extra.

Example:
    >>> from durable_helpers.engines.duckdb import ExportDB
    >>> ExportDB.__name__
    'ExportDB'
"""
