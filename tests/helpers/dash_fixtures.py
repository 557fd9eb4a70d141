"""The tests' synthetic run stores: ``star_fixtures`` (the benchmarks use it too, without importing tests/)."""

from helpers.store_sql import query as sql
from star_fixtures.stores import dead_pid, set_running, write_corrupt, write_half
from star_fixtures.synthetic import PAYLOAD, PAYLOAD_QID, build_bulk, build_run, real_prefix, synth_records

__all__ = [
    "PAYLOAD",
    "PAYLOAD_QID",
    "build_bulk",
    "build_run",
    "dead_pid",
    "real_prefix",
    "set_running",
    "sql",
    "synth_records",
    "write_corrupt",
    "write_half",
]
