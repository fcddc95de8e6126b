"""Logs in: readers for every log format, ingest, and the trajectory store on disk.

`ingest_logs` reads proxy-run logs (`readers/`, one module per format) into a store directory
(`files`): runs.parquet, trajectories.parquet, manifest.json.
"""

from regmixd_cli.store.files import read_store, store_hash
from regmixd_cli.store.ingest import IngestRequest, IngestResult, build_store, ingest_logs

__all__ = [
    "IngestRequest", "IngestResult", "build_store", "ingest_logs", "read_store", "store_hash",
]  # fmt: skip
