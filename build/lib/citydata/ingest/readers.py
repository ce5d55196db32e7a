"""Read a department's file into a frame of text columns, whatever its format and encoding.

Values stay exactly as sent (text); validation decides what they mean. A file that cannot be
read raises UnreadableFile with a message naming the file and the problem."""

from __future__ import annotations

import codecs
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from charset_normalizer import from_bytes

from citydata.config import Limits

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "gbk": "gbk",
    "gb2312": "gbk",
    "gb18030": "gb18030",
}


class UnreadableFile(Exception):
    """``status``: how HTTP answers it (413 for a file past a limit)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def file_format(path: Path, declared: str | None = None) -> str:
    if declared:
        return declared
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UnreadableFile(
            f"{path.name}: 无法识别的文件格式「{path.suffix}」（支持 CSV、XLSX、JSON Lines、Parquet）"
        )
    return fmt


def _decode(path: Path, encoding: str, target: Path | None = None) -> str | None:
    """Decode the whole file strictly in 1 MiB steps (never held whole), writing UTF-8 to
    ``target`` when given. Returns an error text naming the line, or None: checking and
    transcoding are one pass."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with (
        path.open("rb") as src,
        target.open("w", encoding="utf-8") if target else nullcontext() as dst,
    ):
        while chunk := src.read(1 << 20):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += chunk[: exc.start].count(b"\n")
                return f"第 {line} 行附近的字节不是 {encoding} 编码"
            line += text.count("\n")
            if dst:
                dst.write(text)
        try:
            tail = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return f"文件末尾不是完整的 {encoding} 字符"
        if dst:
            dst.write(tail)
    return None


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(1 << 20)


def _plainly_utf8(head: bytes) -> bool:
    """Whether the file's first MiB settles it as UTF-8: valid, and not plain ASCII (Chinese
    text in GBK almost never decodes as UTF-8). Then Polars checks the rest as it parses — an
    invalid byte later fails the batch, naming the line (see ``_readable``) — which saves a
    whole pass over the file."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return not head.isascii()


def _utf8_source(path: Path, encoding: str | None, target: Path) -> tuple[Path, str]:
    """The file itself when it is plain UTF-8, else its UTF-8 transcoding at ``target``; with the
    encoding declared, or detected (BOM, UTF-8, GB18030 — a superset of GBK — then a guess)."""
    if encoding:
        encoding = ENCODINGS.get(encoding.lower(), encoding.lower())
        source = path if encoding == "utf-8" else target
        if source == path and _plainly_utf8(_head(path)):
            return path, encoding
        problem = _decode(path, encoding, None if source == path else target)
        if problem:
            raise UnreadableFile(f"{path.name}: 文件不是声明的编码 {encoding}：{problem}")
        return source, encoding
    head = _head(path)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    else:
        if _plainly_utf8(head) or _decode(path, "utf-8") is None:
            return path, "utf-8"
        guess = from_bytes(head).best()
        candidates = ["gb18030"] + ([guess.encoding] if guess else [])
    for candidate in candidates:
        if _decode(path, candidate, target) is None:
            return target, candidate
    raise UnreadableFile(f"{path.name}: 无法判断文件编码（不是 UTF-8、GBK 或 GB18030）")


def _column_number(letters: bytes) -> int:
    number = 0
    for c in letters:
        number = number * 26 + (c - 64)
    return number


def sheet_extent(path: Path, limits: Limits) -> tuple[int, int]:
    """(rows, columns) an Excel workbook's first sheet spans, found by scanning its cell
    references (the declared <dimension> can lie), stopping early past the limits. A sheet of
    one far cell costs a reader rows × columns cells of memory: this is checked first."""
    try:
        book = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableFile(f"{path.name}: 不是有效的 Excel 工作簿：{exc}") from exc
    with book:
        unzipped = sum(i.file_size for i in book.infolist())
        if unzipped > limits.unzipped_bytes:
            raise UnreadableFile(
                f"{path.name}: 解压后 {unzipped >> 20} MiB，超过上限 {limits.unzipped_bytes >> 20} MiB",
                413,
            )
        sheets = sorted(
            n for n in book.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)
        )
        if not sheets:
            raise UnreadableFile(f"{path.name}: 工作簿中没有工作表")
        first = min(sheets, key=lambda n: int(re.sub(r"\D", "", n)))
        rows = columns = 0
        tail = b""
        with book.open(first) as xml:
            while chunk := xml.read(1 << 20):
                text = tail + chunk
                for letters, digits in _CELL_REF.findall(text):
                    columns = max(columns, _column_number(letters))
                    rows = max(rows, int(digits))
                tail = text[-32:]
                if columns > limits.columns or rows * max(columns, 1) > limits.sheet_cells:
                    break
    return rows, columns


_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})(\d{1,7})"')


def check_upload(path: Path, limits: Limits) -> None:
    """Refuse a file past the limits before any reader allocates for it (UnreadableFile, 413)."""
    size = path.stat().st_size
    if size > limits.upload_bytes:
        raise UnreadableFile(f"{path.name}: 文件超过上限 {limits.upload_bytes >> 20} MiB", 413)
    if FORMATS.get(path.suffix.lower()) == "xlsx":
        rows, columns = sheet_extent(path, limits)
        if columns > limits.columns:
            raise UnreadableFile(
                f"{path.name}: 工作表有 {columns} 列，超过上限 {limits.columns} 列", 413
            )
        if rows > limits.rows or rows * columns > limits.sheet_cells:
            raise UnreadableFile(
                f"{path.name}: 工作表范围 {rows} 行 × {columns} 列，超过上限"
                f"（{limits.rows} 行，{limits.sheet_cells} 个单元格）",
                413,
            )


def _cell_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 12 as 12.0
    return str(value)


def read_xlsx(path: Path) -> pl.DataFrame:
    from python_calamine import CalamineWorkbook

    try:
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types for broken workbooks
        raise UnreadableFile(f"{path.name}: 无法读取 Excel 工作簿：{exc}") from exc
    if not rows:
        raise UnreadableFile(f"{path.name}: 工作表为空")
    header = [str(h).strip() for h in rows[0]]
    body = [
        [_cell_text(v) for v in row] for row in rows[1:] if any(v not in (None, "") for v in row)
    ]
    return pl.DataFrame(body, schema={h: pl.String for h in header}, orient="row")


CHUNK_ROWS = 250_000
# Files are read in pieces of this many rows. The first piece is a chunk of its own, so that
# writing starts early; later pieces are gathered into chunks of CHUNK_ROWS.
PIECE_ROWS = 25_000


def _tidy(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns, surrounding blanks stripped, empty cells as null, headers trimmed."""
    return frame.select(
        pl.col(c).cast(pl.String).str.strip_chars().replace("", None).alias(str(c).strip())
        for c in frame.columns
    )


def _readable(path: Path, batches: Iterator[pl.DataFrame], what: str) -> Iterator[pl.DataFrame]:
    """A reading error met part-way through becomes UnreadableFile naming the file."""
    try:
        yield from batches
    except (pl.exceptions.PolarsError, OSError) as exc:
        if "invalid utf-8" in str(exc):  # met past the part _plainly_utf8 looked at
            problem = _decode(path, "utf-8") or str(exc)
            raise UnreadableFile(f"{path.name}: 文件不全是 UTF-8 编码：{problem}") from exc
        raise UnreadableFile(f"{path.name}: 不是有效的 {what}：{exc}") from exc


def _scan(
    path: Path, lazy: pl.LazyFrame, what: str, piece_rows: int
) -> tuple[list[str], Iterator[pl.DataFrame]]:
    """The header of a lazily scanned file, and its rows in pieces."""
    try:
        columns = lazy.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UnreadableFile(f"{path.name}: 不是有效的 {what}：{exc}") from exc
    return columns, _readable(path, lazy.collect_batches(chunk_size=piece_rows), what)


@dataclass
class Source:
    """An opened department file: its header, the encoding used, and its rows in chunks of text
    columns (a large CSV or Parquet file is never held whole)."""

    columns: list[str]
    encoding: str | None
    pieces: Iterator[pl.DataFrame]
    chunk_rows: int
    format: str  # csv | xlsx | jsonl | parquet

    def chunks(self) -> Iterator[pl.DataFrame]:
        """The first piece alone, then chunks each at most four times the one before, up to
        ``chunk_rows``: writing starts early, and each chunk is checked while the one before
        it is written, without the writer waiting on a chunk much larger than its own."""
        gathered: list[pl.DataFrame] = []
        rows, size = 0, 1
        for piece in self.pieces:
            if not piece.height:
                continue
            gathered.append(piece)
            rows += piece.height
            if rows >= size:
                yield _tidy(pl.concat(gathered, rechunk=False))
                gathered, size = [], min(4 * rows, self.chunk_rows)
                rows = 0
        if gathered:
            yield _tidy(pl.concat(gathered, rechunk=False))


@contextmanager
def open_source(
    path: Path,
    declared_format: str | None = None,
    encoding: str | None = None,
    chunk_rows: int | None = None,
) -> Iterator[Source]:
    chunk_rows = chunk_rows or CHUNK_ROWS
    piece_rows = min(PIECE_ROWS, chunk_rows)
    fmt = file_format(path, declared_format)
    with tempfile.TemporaryDirectory() as folder:
        if fmt == "csv":
            source, encoding = _utf8_source(path, encoding, Path(folder) / "utf8.csv")
            columns, batches = _scan(
                path, pl.scan_csv(source, infer_schema=False), "CSV", piece_rows
            )
        elif fmt == "parquet":
            columns, batches = _scan(path, pl.scan_parquet(path), "Parquet", piece_rows)
            encoding = None
        else:  # Excel sheets and JSON Lines files from departments are small enough to read whole
            if fmt == "xlsx":
                frame, encoding = read_xlsx(path), None
            else:
                frame, encoding = read_jsonl(path), "utf-8"
            columns, batches = frame.columns, frame.iter_slices(piece_rows)
        yield Source([str(c).strip() for c in columns], encoding, batches, chunk_rows, fmt)


def read_jsonl(path: Path) -> pl.DataFrame:
    problem = _decode(path, "utf-8")
    if problem:
        raise UnreadableFile(f"{path.name}: JSON Lines 必须是 UTF-8：{problem}")
    try:
        return pl.read_ndjson(path, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        raise UnreadableFile(f"{path.name}: 不是有效的 JSON Lines：{exc}") from exc
