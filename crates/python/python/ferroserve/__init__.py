"""ferroserve in Python: the model versions the ferroserve server loads (ONNX, XGBoost,
LightGBM, scikit-learn through ONNX), run in-process on numpy arrays or Arrow record batches.

    import ferroserve
    model = ferroserve.Model.load("models/churn")          # or "models/churn@stable"
    model.predict({"input": x})                             # {output name: numpy array}
    model.predict_arrow(batch, columns=[...], keep=["id"])  # pyarrow.RecordBatch, zero-copy

``cached_model(path)`` loads a model once per process (what Spark and Ray workers call);
``ferroserve.spark.score(df, path, ...)`` scores a Spark DataFrame through ``mapInArrow``.
"""

from ferroserve._ferroserve import Model, __version__, cached_model, loads

__all__ = ["Model", "cached_model", "loads", "__version__"]
