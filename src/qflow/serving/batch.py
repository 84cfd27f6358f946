"""Batch inference: a CSV or Parquet file through a registered model, chunk by chunk.

Memory stays bounded by the chunk size; output goes to Parquet (or CSV) as chunks finish.
Each chunk is checked against the model's signature first; an error names the column and
the row in the input file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import InvalidValueError, SignatureMismatchError

if TYPE_CHECKING:
    import pandas as pd

    from qflow.serving.live import Loaded

Progress = Callable[[int, int | None], None]
"""Called with (rows done, rows in total or None when unknown) after each chunk."""


def count_rows(path: Path) -> int | None:
    """Rows in a CSV (lines after the header) or a Parquet file, without parsing them."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def _chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
        return
    import pandas as pd

    yield from pd.read_csv(path, chunksize=rows)


def _output_frame(chunk: pd.DataFrame, predictions: Any) -> pd.DataFrame:
    import numpy as np

    values = np.asarray(predictions)
    out = chunk.reset_index(drop=True).copy()
    if values.ndim == 1:
        out["prediction"] = values
    else:
        for index in range(values.shape[1]):
            out[f"prediction_{index}"] = values[:, index]
    return out


def predict_file(
    loaded: Loaded,
    source: str | Path,
    target: str | Path,
    *,
    chunk_rows: int = 10_000,
    progress: Progress | None = None,
) -> int:
    """Predict every row of ``source`` into ``target`` (.parquet or .csv); return the rows."""
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise InvalidValueError(f"Input file {str(source)!r} does not exist.")
    if target.suffix.lower() not in (".parquet", ".csv"):
        raise InvalidValueError(
            f"Output {str(target)!r} must end in .parquet or .csv; that picks its format."
        )
    if chunk_rows < 1:
        raise InvalidValueError(f"Chunk size {chunk_rows} must be at least 1.")
    total = count_rows(source)
    done = 0
    writer: Any = None
    tmp = target.with_name(f".{target.name}.partial")
    try:
        for chunk in _chunks(source, chunk_rows):
            inputs = _checked(loaded, chunk, done, source)
            frame = _output_frame(chunk, loaded.model.predict(inputs))
            writer = _write(frame, tmp, writer, csv=target.suffix.lower() == ".csv")
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if writer is not None and writer is not True:
            writer.close()
        if done == 0:
            raise InvalidValueError(f"Input file {str(source)!r} has no rows.")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return done


def _checked(loaded: Loaded, chunk: pd.DataFrame, offset: int, source: Path) -> Any:
    if loaded.signature is None:
        return chunk
    try:
        return loaded.signature.check_frame(chunk)
    except SignatureMismatchError as exc:
        raise SignatureMismatchError(
            f"{source.name} (rows {offset}–{offset + len(chunk) - 1}, counted from 0 after "
            f"the header): {exc}",
            field=exc.field,
            code=exc.code,
        ) from exc


def _write(frame: pd.DataFrame, path: Path, writer: Any, *, csv: bool) -> Any:
    """Append a chunk; the writer state is True for CSV, a ParquetWriter for Parquet."""
    if csv:
        first = writer is None
        frame.to_csv(path, mode="w" if first else "a", header=first, index=False)
        return True
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    else:
        table = table.cast(writer.schema)
    writer.write_table(table)
    return writer
