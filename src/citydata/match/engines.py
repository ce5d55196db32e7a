"""Where a Splink model runs: DuckDB on this machine (the default), or Apache Spark — local mode
on one machine, or a cluster — for a city too large for one.

Both run the same model: the comparisons and blocking rules are Splink's dialect-neutral
creators (Spark gets ``jaro_winkler`` and ``damerau_levenshtein`` from the similarity jar that
ships with Splink), the normalisation and pinyin are done in Polars before either sees a row,
and every random choice (the u sample, the salts) is drawn in Polars from the settings' seed,
not by the engine's own sampling, so both engines train on the same pairs.

Spark follows Splink's guidance (docs/topic_guides/performance/optimising_spark.md):
shuffle partitions and default parallelism about 5 × the cores, lineage broken between steps
(parquet under a checkpoint folder on a cluster), and salting of blocking rules whose largest
block would leave one task holding much of the work. pyspark is an optional extra
(``pip install 'citydata[spark]'``), imported only when the Spark engine is asked for."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = {
    "duckdb": "DuckDB（本机，默认）",
    "spark": "Apache Spark（本地模式或集群；需要 citydata[spark] 与 Java 17）",
}
# Splink: "try setting spark.default.parallelism to around 5x the number of CPUs".
PARALLELISM_PER_CORE = 5
SALT_MIN_PAIRS = 5_000_000  # a rule producing fewer pairs than this is never worth salting


class EngineError(RuntimeError):
    """The engine asked for cannot run here; the message says what to install or set."""


def check_engine(name: str) -> str:
    """The engine's name, checked; Spark is started here (before a caller opens a transaction
    it would hold while the JVM starts), so a missing pyspark or Java fails early and clearly."""
    if name not in ENGINES:
        choices = "、".join(f"{k}（{v}）" for k, v in ENGINES.items())
        raise EngineError(f"未知的匹配引擎「{name}」，可选：{choices}")
    if name == "spark":
        spark_session()
    return name


@dataclass
class Backend:
    """A Splink DatabaseAPI with what the model needs to know about it."""

    engine: str
    db: Any  # splink's DatabaseAPI
    parallelism: int  # tasks the engine runs at once × the guidance's factor; 1: never salt


def duckdb_api():
    """Splink's DuckDB backend, spilling to the system's temporary folder — by default DuckDB
    spills to ``.tmp`` in the working directory, which may be a source checkout."""
    import duckdb
    from splink.backends.duckdb import DuckDBAPI

    spill = Path(tempfile.gettempdir()) / "citydata-duckdb"
    spill.mkdir(exist_ok=True)
    return DuckDBAPI(connection=duckdb.connect(config={"temp_directory": str(spill)}))


@contextmanager
def backend(engine: str = "duckdb") -> Iterator[Backend]:
    """The engine's DatabaseAPI for one model run; Spark's intermediate files go afterwards."""
    check_engine(engine)
    if engine == "duckdb":
        yield Backend("duckdb", duckdb_api(), 1)
        return
    session = spark_session()
    run_dir = f"{_checkpoint_root().rstrip('/')}/run-{uuid.uuid4().hex[:12]}"
    session.sparkContext.setCheckpointDir(run_dir)
    from splink.backends.spark import SparkAPI

    try:
        db = SparkAPI(spark_session=session, break_lineage_method=lineage_method(session))
        _check_similarity_functions(session)
        yield Backend("spark", db, spark_parallelism(session))
    finally:
        session.catalog.clearCache()
        for view in session.catalog.listTables():
            if view.isTemporary and view.name.startswith("__splink"):
                session.catalog.dropTempView(view.name)
        if "://" not in run_dir:  # a local folder: ours to remove (HDFS/S3 are not)
            shutil.rmtree(run_dir, ignore_errors=True)


# ---------------------------------------------------------------- Spark


def _pyspark():
    try:
        import pyspark
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError(
            "Spark 引擎需要 pyspark：pip install 'citydata[spark]'（另需 Java 17 或更新版本）"
        ) from exc
    return pyspark, SparkSession


def _cores(master: str) -> int | None:
    """Cores of a local master (local, local[4], local[*]); None for a cluster's master."""
    if master == "local":
        return 1
    found = re.fullmatch(r"local\[(\d+|\*)(?:,\d+)?\]", master)
    if not found:
        return None
    return (os.cpu_count() or 1) if found.group(1) == "*" else int(found.group(1))


def _checkpoint_root() -> str:
    """Where Splink writes the parquet that breaks Spark's lineage. On a cluster it must be a
    folder every executor reaches (CITYDATA_SPARK_CHECKPOINT_DIR=hdfs://…)."""
    configured = os.environ.get("CITYDATA_SPARK_CHECKPOINT_DIR")
    return configured or str(Path(tempfile.gettempdir()) / "citydata-spark")


_SESSION: Any = None


def spark_session():
    """The process's Spark session: one already active (e.g. under spark-submit, configured by
    its operator) is used as it is; else one is built from the environment:

    - ``CITYDATA_SPARK_MASTER`` (default ``local[*]``): ``local[2]``, ``spark://host:7077``,
      ``yarn``, ``k8s://…``;
    - ``CITYDATA_SPARK_DRIVER_MEMORY`` (default ``4g``): the driver's heap, which in local mode
      is all of Spark's memory;
    - ``CITYDATA_SPARK_PARALLELISM`` (default 5 × the local cores): shuffle partitions.

    In local mode the driver binds to 127.0.0.1 and the web UI is off."""
    global _SESSION
    pyspark, SparkSession = _pyspark()
    active = SparkSession.getActiveSession()
    if active is not None:
        _SESSION = active
    if _SESSION is not None:
        return _SESSION
    from splink.backends.spark import similarity_jar_location

    env = os.environ
    master = env.get("CITYDATA_SPARK_MASTER", "local[*]")
    cores = _cores(master)
    builder = (
        SparkSession.builder.master(master)
        .appName("citydata")
        .config("spark.jars", similarity_jar_location())
        .config("spark.driver.memory", env.get("CITYDATA_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
    )
    partitions = env.get("CITYDATA_SPARK_PARALLELISM") or (
        str(PARALLELISM_PER_CORE * cores) if cores else None
    )
    if partitions:
        builder = builder.config("spark.default.parallelism", partitions).config(
            "spark.sql.shuffle.partitions", partitions
        )
    if cores:  # local mode: nothing listens beyond this machine
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
        )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, a wrong master, a cluster that does not answer
        raise EngineError(
            f"无法启动 Spark（master={master}）：{str(exc).splitlines()[0]}。"
            "本地模式需要 Java 17 或更新版本（JAVA_HOME 或 PATH 中的 java）"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    if not partitions:  # a cluster: 5 × the cores its executors offer
        session.conf.set(
            "spark.sql.shuffle.partitions",
            str(PARALLELISM_PER_CORE * session.sparkContext.defaultParallelism),
        )
    _SESSION = session
    return session


def lineage_method(session) -> str:
    """How Splink breaks Spark's lineage between its steps: ``CITYDATA_SPARK_LINEAGE``, else
    parquet files under the checkpoint folder on a cluster (Splink's default, best on shared
    storage) and ``persist`` in local mode, where the same machine's memory and disks are
    nearer than any file (measured on 2 cores: 39 s against 67 s for 4,626 records)."""
    configured = os.environ.get("CITYDATA_SPARK_LINEAGE")
    if configured:
        if configured not in {"parquet", "persist", "checkpoint"}:
            raise EngineError(
                f"CITYDATA_SPARK_LINEAGE=「{configured}」无效，可选：parquet、persist、checkpoint"
            )
        return configured
    return "persist" if _cores(session.sparkContext.master) else "parquet"


def spark_parallelism(session) -> int:
    return int(session.conf.get("spark.sql.shuffle.partitions"))


def _check_similarity_functions(session) -> None:
    """A session made elsewhere may lack Splink's jar; say so now, not deep inside a run."""
    try:
        session.sql("SELECT jaro_winkler('a', 'b'), damerau_levenshtein('a', 'b')").collect()
    except Exception as exc:
        from splink.backends.spark import similarity_jar_location

        raise EngineError(
            "Spark 会话缺少 Splink 的相似度函数（jaro_winkler、damerau_levenshtein）："
            f"启动时加上 --jars {similarity_jar_location()}"
        ) from exc


# ---------------------------------------------------------------- salting


def salting_partitions(block_sizes: list[int], parallelism: int) -> int:
    """How many salts a blocking rule needs, from the sizes of its blocks: a block of n rows
    is n(n-1)/2 pairs made by one task, so a block holding more than one task's share of the
    rule's pairs is split by a salt on the left record — each salt a separate join, the union
    the same pairs. 1 (no salting) for small rules and on engines that parallelise anyway."""
    if parallelism <= 1 or not block_sizes:
        return 1
    pairs = [n * (n - 1) // 2 for n in block_sizes]
    total = sum(pairs)
    if total < SALT_MIN_PAIRS:
        return 1
    share = total / parallelism  # one task's fair part
    return max(1, min(parallelism, math.ceil(max(pairs) / share)))
