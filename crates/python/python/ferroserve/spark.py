"""Scoring a Spark DataFrame with a ferroserve model, beyond one machine.

``score(df, model_path, ...)`` returns ``df.mapInArrow(...)``: each Python worker loads the
model once (``ferroserve.cached_model``) and scores the Arrow batches Spark hands it in Rust,
with the GIL released; kept columns pass through without being copied. The model path must be
readable on every executor (a shared file system, or shipped with ``--files``/``--archives``
or baked into the executor image).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import pyarrow as pa

from ferroserve import cached_model


def output_schema(
    df, model_path: str, columns=None, keep=None, map=None, outputs=None
) -> pa.Schema:
    """The Arrow schema ``score`` produces for ``df`` (kept columns, outputs, ``_error``)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return cached_model(model_path).output_schema(
        to_arrow_schema(df.schema), columns=columns, keep=keep, map=map, outputs=outputs
    )


def score(
    df,
    model_path: str,
    columns: Optional[List[str]] = None,
    keep: Optional[List[str]] = None,
    map: Optional[Dict[str, List[str]]] = None,
    batch_rows: Optional[int] = None,
    outputs: Optional[List[str]] = None,
):
    """Scores every row of ``df`` with the model at ``model_path`` (``DIR``, ``DIR/VERSION`` or
    ``DIR@LABEL``).

    - ``columns``: the feature columns of a one-input model, in the order it takes them
      (default: the columns named like the model's inputs);
    - ``map``: ``{input: [columns]}`` for a model with several inputs;
    - ``keep``: columns copied to the result before the predictions (an id);
    - ``outputs``: the output columns wanted (``["probabilities_1"]``) or whole outputs
      (``["probabilities"]``); all by default. Fewer columns cross back to the JVM faster;
    - ``batch_rows``: the most rows per model call (default: Spark's Arrow batch,
      ``spark.sql.execution.arrow.maxRecordsPerBatch``).

    The result has the kept columns, one column per output value (``name`` or ``name_k``) and
    ``_error``: null, or why that row could not be scored (text that is not a number, ...).
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(output_schema(df, model_path, columns, keep, map, outputs))
    options = dict(columns=columns, keep=keep, map=map, outputs=outputs)

    def score_batches(batches):
        # Runs in the Python workers: the model is loaded once per worker process.
        model = cached_model(model_path)
        for batch in batches:
            if batch_rows and batch.num_rows > batch_rows:
                for start in range(0, batch.num_rows, batch_rows):
                    yield model.predict_arrow(batch.slice(start, batch_rows), **options)
            else:
                yield model.predict_arrow(batch, **options)

    return df.mapInArrow(score_batches, schema)
