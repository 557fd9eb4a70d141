"""The run store: one SQLite database (WAL mode) per run folder.

A run folder holds ``config.yaml`` (the resolved config), ``store.sqlite`` and
``adapters/iter_<i>/`` (peft adapters). The database is the single source of
truth: the CLI summary and the dashboard read only from it.

Writes happen in short transactions (one sampling batch, one training run, one
evaluation batch), so that a reader never sees half a batch, and a killed run
resumes from the last committed batch. Samples carry a UNIQUE key, so a
resumed batch can never be stored twice. Nothing here imports torch.

The package, by job (each name is re-exported here, so ``from star_core.store import X`` reads any of them):

- :mod:`.vocab`: the vocabularies of the text columns (stages, phases, decisions, sources), defined once;
- :mod:`.schema`: the schema text (tables, indexes, triggers) by version, built from the vocabularies;
- :mod:`.aggregates`: the aggregate tables the triggers keep, and their rebuild;
- :mod:`.filecheck`: the file check (is this a readable star store), the connection, the schema version;
- :mod:`.migrate`: the prefix table and the migration from version 1 to 2;
- :mod:`.writer`: :class:`RunStore`, the one writer, and the :class:`SampleRecord` rows it takes.

The file names (``DB_NAME``, ``CONFIG_NAME``, ``ADAPTERS_DIR``) belong to :mod:`star_core.runfolder` and
:class:`StoreError` to :mod:`star_core.errors`, both below this package.
"""

from __future__ import annotations

from ..errors import StoreError
from ..runfolder import ADAPTERS_DIR, CONFIG_NAME, DB_NAME
from .aggregates import AGGREGATE_TABLES, AGGREGATES, AGGREGATES_VERSION, SAMPLE_COUNTS, rebuild_aggregates
from .filecheck import SQLITE_HEADER, check, connect, has_aggregates, prompt_column, schema_version
from .migrate import MIN_PREFIX_CHARS, PrefixTable, migrate_v1, split_prompt
from .schema import (
    PROMPT_SQL,
    READABLE_VERSIONS,
    SAMPLES_V1,
    SAMPLES_V2,
    SCHEMA,
    SCHEMA_VERSION,
    STAR_TABLES,
    statements,
)
from .vocab import (
    DECISIONS,
    EVAL_PHASES,
    FRONTIER_PREFIX,
    KEPT_DECISIONS,
    OUTCOME_BITS,
    OUTCOME_PHASES,
    PHASE_SPLIT,
    PHASES,
    STAGES,
    TRAIN_SOURCE,
    sql_list,
)
from .writer import RunStore, SampleRecord

__all__ = [
    "ADAPTERS_DIR",
    "AGGREGATES",
    "AGGREGATES_VERSION",
    "AGGREGATE_TABLES",
    "CONFIG_NAME",
    "DB_NAME",
    "DECISIONS",
    "EVAL_PHASES",
    "FRONTIER_PREFIX",
    "KEPT_DECISIONS",
    "MIN_PREFIX_CHARS",
    "OUTCOME_BITS",
    "OUTCOME_PHASES",
    "PHASES",
    "PHASE_SPLIT",
    "PROMPT_SQL",
    "PrefixTable",
    "READABLE_VERSIONS",
    "RunStore",
    "SAMPLES_V1",
    "SAMPLES_V2",
    "SAMPLE_COUNTS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "STAGES",
    "STAR_TABLES",
    "SampleRecord",
    "StoreError",
    "TRAIN_SOURCE",
    "check",
    "connect",
    "has_aggregates",
    "migrate_v1",
    "prompt_column",
    "rebuild_aggregates",
    "schema_version",
    "split_prompt",
    "sql_list",
    "statements",
]
