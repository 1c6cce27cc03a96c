"""`ferroserve.Model` on numpy arrays and Arrow record batches: every numeric conformance case
of the manifest (tests/conformance/cases.json, its `python` surface) against the library's own
answers with the manifest's named tolerances, zero-copy pass-through, bad rows isolated, clear
errors."""

import json
import pathlib
import pickle
import shutil

import numpy as np
import pyarrow as pa
import pytest

import ferroserve

ROOT = pathlib.Path(__file__).resolve().parents[3]


MANIFEST = json.loads((ROOT / "tests/conformance/cases.json").read_text())


def _runs(surface):
    """The (case, model) pairs the manifest's `surface` runs; the others are reported with the
    manifest's reason (pytest -rs lists them)."""
    entry = MANIFEST["surfaces"][surface]
    out = []
    for case in MANIFEST["cases"]:
        for model in case["models"]:
            label = case["name"] + (f" [{model['format']}]" if len(case["models"]) > 1 else "")
            reason = case.get("skip", {}).get(surface) or entry["why_not"].get(model["format"])
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            out.append(pytest.param(case, model, id=label, marks=marks))
    return out


def _at(value, pointer):
    for key in pointer.split("/")[1:] if pointer else []:
        key = key.replace("~1", "/").replace("~0", "~")
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def _read(relative):
    return json.loads((ROOT / relative).read_text())


@pytest.mark.parametrize("case,model", _runs("python"))
def test_conformance_case(case, model, tmp_path):
    """A conformance case (tests/conformance/cases.json) through `Model.predict` on numpy: each
    compared output against the manifest's expectation with its named tolerance."""
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    shutil.copy(ROOT / model["file"], version / pathlib.Path(model["file"]).name)
    loaded = ferroserve.Model.load(str(tmp_path / "m"))
    names = [i["name"] for i in loaded.signature["inputs"]]
    feeds = {}
    for i, spec in enumerate(case["inputs"]):
        t = _at(_read(spec["file"]), spec.get("at", ""))
        data = np.array([np.nan if v is None else v for v in t["data"]], dtype=np.float32)
        feeds[t.get("name", names[i])] = data.reshape(t["shape"])
    rows = next(iter(feeds.values())).shape[0]
    out = loaded.predict(feeds)
    for o in case["outputs"]:
        what = f"{case['name']} {o['name']}"
        found = _at(_read(o.get("file", case["expected"])), o.get("at", ""))
        tensor = isinstance(found, dict)
        want = found["data"] if tensor else found
        got = out[o["name"]]
        if tensor:
            assert list(got.shape) == found["shape"], what
        if want and isinstance(want[0], str):
            assert [g.decode() if isinstance(g, bytes) else str(g) for g in got.ravel()] == want, what
            continue
        want = np.array([np.nan if v is None else v for v in want], dtype=np.float64)
        if o.get("derive") == "argmax":
            scores = want.reshape(rows, -1)
            if scores.shape[1] == 1:
                scores = np.hstack([1 - scores, scores])
            want = np.argmax(scores, axis=1).astype(np.float64)
        else:
            assert "derive" not in o, f"{what}: cannot derive {o['derive']}"
        got = np.asarray(got, dtype=np.float64)
        if "column" in o:
            got = got.reshape(-1, o["column"]["of"])[:, o["column"]["index"]]
        tolerance = MANIFEST["tolerances"][o["tolerance"]]
        np.testing.assert_allclose(
            got.ravel(), want, rtol=tolerance["rel"], atol=tolerance["abs"], equal_nan=True,
            err_msg=f"{what} (tolerance {o['tolerance']})",
        )


def test_float64_rows_are_converted_to_the_input_datatype(repo):
    model = ferroserve.Model.load(str(repo / "xgb"))
    assert model.name == "xgb" and model.version == 1
    x = np.random.default_rng(0).normal(size=(5, 30))
    out = model.predict({"input": x})
    probabilities = out["probabilities"]
    assert probabilities.dtype == np.float32 and probabilities.shape == (5, 2)
    expected = model.predict({"input": x.astype(np.float32)})["probabilities"]
    np.testing.assert_array_equal(probabilities, expected)


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
