"""The tests' synthetic run stores: ``star_fixtures.synthetic`` (the benchmarks use it too, not importing tests/)."""

from star_fixtures.synthetic import (
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
