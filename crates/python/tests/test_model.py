"""`ferroserve.Model` on numpy arrays and Arrow record batches: the library's own answers
(the committed oracles), zero-copy pass-through, bad rows isolated, clear errors."""

import json
import pickle

import numpy as np
import pyarrow as pa
import pytest

import ferroserve


def xgb_fixture(root, name="binary_logistic"):
    base = root / "tests/fixtures/trees/xgboost" / name
    rows = json.loads((base / "rows.json").read_text())
    x = np.array([np.nan if v is None else v for v in rows["data"]], dtype=np.float32)
    expected = json.loads((base / "expected.json").read_text())
    return x.reshape(rows["shape"]), np.array(expected["predict"], dtype=np.float32)


def test_predict_matches_xgboost(root, repo):
    model = ferroserve.Model.load(str(repo / "xgb"))
    assert model.name == "xgb" and model.version == 1
    x, expected = xgb_fixture(root)
    out = model.predict({"input": x.astype(np.float64)})  # converted to the input's FP32
    probabilities = out["probabilities"]
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(x), 2)
    np.testing.assert_allclose(probabilities[:, 1], expected, atol=1e-6)


def test_signature_and_versions(repo):
    model = ferroserve.Model.load(f"{repo / 'iris_logreg'}@1")
    sig = model.signature
    assert sig["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in sig["outputs"]] == ["label", "probabilities"]
    with pytest.raises(ValueError, match="no version label 'stable'"):
        ferroserve.Model.load(f"{repo / 'iris_logreg'}@stable")
    with pytest.raises(OSError):
        ferroserve.Model.load(str(repo / "nope"))


def test_predict_errors_name_the_tensor(repo):
    model = ferroserve.Model.load(str(repo / "iris_logreg"))
    with pytest.raises(ValueError, match="no input 'x'"):
        model.predict({"x": np.zeros((1, 4))})
    with pytest.raises(ValueError, match="input"):
        model.predict({"input": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="cannot be read as an array of FP32"):
        model.predict({"input": [["a", "b", "c", "d"]]})


def test_predict_arrow_isolates_bad_rows_and_passes_columns_through(repo):
    model = ferroserve.Model.load(str(repo / "iris_logreg"))
    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([10, 11, 12], pa.int64()),
            "sl": [5.1, 6.7, 6.3],
            "sw": [3.5, 3.1, 2.9],
            "pl": [1.4, 4.4, 5.6],
            "pw": ["0.2", "x", "1.8"],
        }
    )
    out = model.predict_arrow(batch, columns=["sl", "sw", "pl", "pw"], keep=["id"])
    assert out.schema.names == [
        "id", "label", "probabilities_0", "probabilities_1", "probabilities_2", "_error",
    ]
    assert out.column("label").to_pylist() == [0, None, 2]
    assert out.column("_error").to_pylist() == [None, "column 'pw': 'x' is not a number", None]
    # The kept column is the caller's buffer, not a copy (Arrow C data interface both ways).
    assert out.column("id").buffers()[1].address == batch.column("id").buffers()[1].address
    # The same rows as numpy give the same numbers.
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8]], dtype=np.float32)
    p = model.predict({"input": x})["probabilities"]
    np.testing.assert_array_equal(out.column("probabilities_2").to_numpy(zero_copy_only=False)[[0, 2]], p[:, 2])
    with pytest.raises(ValueError, match="takes 4 features per row"):
        model.predict_arrow(batch, columns=["sl", "sw"])
    assert model.output_schema(batch.schema, columns=["sl", "sw", "pl", "pw"]).names[0] == "label"
    chosen = model.predict_arrow(
        batch, columns=["sl", "sw", "pl", "pw"], outputs=["probabilities_2", "label"]
    )
    assert chosen.schema.names == ["label", "probabilities_2", "_error"]
    assert chosen.column("probabilities_2").equals(out.column("probabilities_2"))
    with pytest.raises(ValueError, match="no such output or output column"):
        model.predict_arrow(batch, columns=["sl", "sw", "pl", "pw"], outputs=["nope"])


def test_cached_model_loads_once_and_pickles_by_path(repo):
    path = str(repo / "digits_mlp")
    before = ferroserve.loads()
    a = ferroserve.cached_model(path)
    b = ferroserve.cached_model(path)
    assert a is b and ferroserve.loads() == before + 1
    c = pickle.loads(pickle.dumps(a))
    assert c is a and ferroserve.loads() == before + 1
