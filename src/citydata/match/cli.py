"""`citydata match FILE [FILE ...] --settings SETTINGS --out CLUSTERS.csv`: match any tables."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from citydata.cli_common import fail, out
from citydata.ingest.readers import UnreadableFile


def match_cmd(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="CSV 或 Parquet"),
    settings_path: Path = typer.Option(..., "--settings", exists=True, dir_okay=False),
    out_path: Path = typer.Option(..., "--out", help="每条记录的簇编号与匹配权重（CSV）"),
    review_path: Path | None = typer.Option(None, "--review", help="待人工确认的记录对（CSV）"),
    engine: str = typer.Option(
        "duckdb", "--engine", help="匹配引擎：duckdb（本机）或 spark（见 docs/scale.md）"
    ),
) -> None:
    """Group the records of FILES that describe the same entity (Splink, Chinese-aware)."""
    from citydata.match.engines import EngineError, check_engine
    from citydata.match.service import match_frames, read_table
    from citydata.match.settings import SettingsError, load_settings

    try:
        settings = load_settings(settings_path)
        frames = {}
        for path in files:
            frame = read_table(path)
            settings.check_columns(frame.columns, path.name)
            frames[path.name] = frame
        check_engine(engine)
    except (SettingsError, UnreadableFile, EngineError) as exc:
        fail(str(exc))
    start = time.perf_counter()
    with out.status(f"匹配 {sum(f.height for f in frames.values()):,} 条记录…"):
        clusters, uncertain = match_frames(frames, settings, engine)
    clusters.write_csv(out_path)
    if review_path:
        uncertain.write_csv(review_path)
    out.print(
        f"{clusters.height:,} 条记录 → {clusters['cluster_id'].n_unique():,} 个实体，"
        f"待确认 {uncertain.height:,} 对，用时 {time.perf_counter() - start:.1f} 秒；"
        f"结果写入 {out_path}",
        highlight=False,
    )
