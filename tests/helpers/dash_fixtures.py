"""The tests' synthetic run stores: ``star_core.synthetic`` (the benchmarks use it too, without importing tests/)."""

from star_core.synthetic import (
    PAYLOAD,
    PAYLOAD_QID,
    build_bulk,
    build_run,
    dead_pid,
    real_prefix,
    set_running,
    sql,
    synth_records,
    write_corrupt,
    write_half,
)

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
