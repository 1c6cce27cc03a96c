#!/usr/bin/env python3
"""Train the tree-benchmark models and time the reference implementations on them.

Owns target/bench-models/trees/ (not committed; regenerated in ~30 s):
  xgboost/model.json     XGBoost 3.2, binary:logistic, 100 trees, max_depth 8, 20 features
                         (sklearn make_classification, 20,000 rows, seed 0, tree_method hist)
  xgboost/model.onnx     the same model converted by onnxmltools (target opset 15)
  lightgbm/model.txt     LightGBM 4.7, binary, 100 trees, 63 leaves, same data
  lightgbm/model.onnx    the same model converted by onnxmltools
  random_forest/model.onnx  scikit-learn RandomForestClassifier, 100 trees, max_depth 8, same
                         data, converted by skl2onnx (zipmap off)
  rows.f32               1024 held-out rows, float32 little-endian, row-major (1024 x 20)
  reference.json         median seconds per call, one thread, for batch 1 / 64 / 1024, of
                         xgboost Booster.inplace_predict, lightgbm Booster.predict, scikit-learn
                         predict_proba (n_jobs=1) and onnxruntime InferenceSession.run on each
                         ONNX conversion

Usage: scripts/python-env.sh && .venv/bin/python scripts/gen_bench_trees.py [--skip-timing]
bench/trees.sh runs this, then the criterion benchmark, and prints them side by side.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench-models" / "trees"
BATCHES = (1, 64, 1024)


def median_seconds(fn, budget=1.5, min_calls=20):
    """Median wall time of fn() over repeated calls within about `budget` seconds."""
    fn()
    times = []
    deadline = time.perf_counter() + budget
    while len(times) < min_calls or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 100_000:
            break
    return float(np.median(times))


def main():
    import lightgbm as lgb
    import onnxmltools
    import onnxruntime as ort
    import xgboost as xgb
    from onnxmltools.convert.common.data_types import FloatTensorType

    skip_timing = "--skip-timing" in sys.argv
    x, y = make_classification(n_samples=21_024, n_features=20, n_informative=12,
                               random_state=0)
    x = x.astype(np.float32)
    xtr, ytr, xte = x[:-1024], y[:-1024], np.ascontiguousarray(x[-1024:])
    (OUT / "xgboost").mkdir(parents=True, exist_ok=True)
    (OUT / "lightgbm").mkdir(parents=True, exist_ok=True)
    (OUT / "random_forest").mkdir(parents=True, exist_ok=True)
    xte.tofile(OUT / "rows.f32")

    booster = xgb.train({"objective": "binary:logistic", "max_depth": 8, "eta": 0.1,
                         "tree_method": "hist", "nthread": 1, "seed": 0},
                        xgb.DMatrix(xtr, label=ytr, nthread=1), num_boost_round=100)
    booster.save_model(str(OUT / "xgboost" / "model.json"))
    lgbm = lgb.train({"objective": "binary", "num_leaves": 63, "learning_rate": 0.1,
                      "num_threads": 1, "seed": 0, "deterministic": True, "verbose": -1},
                     lgb.Dataset(xtr, label=ytr), num_boost_round=100)
    lgbm.save_model(str(OUT / "lightgbm" / "model.txt"))

    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx import to_onnx

    forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1)
    forest.fit(xtr, ytr)
    rf_onnx = to_onnx(forest, xtr[:1], options={"zipmap": False},
                      target_opset={"": 17, "ai.onnx.ml": 3})
    (OUT / "random_forest" / "model.onnx").write_bytes(rf_onnx.SerializeToString())

    initial = [("input", FloatTensorType([None, 20]))]
    xgb_onnx = onnxmltools.convert_xgboost(booster, initial_types=initial, target_opset=15)
    onnxmltools.utils.save_model(xgb_onnx, str(OUT / "xgboost" / "model.onnx"))
    lgb_onnx = onnxmltools.convert_lightgbm(lgbm, initial_types=initial, target_opset=15,
                                            zipmap=False)
    onnxmltools.utils.save_model(lgb_onnx, str(OUT / "lightgbm" / "model.onnx"))

    # Sanity: the conversions agree with their libraries.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sessions = {lib: ort.InferenceSession(str(OUT / lib / "model.onnx"), opts,
                                          providers=["CPUExecutionProvider"])
                for lib in ("xgboost", "lightgbm", "random_forest")}
    p_xgb = booster.inplace_predict(xte)
    p_lgb = lgbm.predict(xte)
    for lib, want in (("xgboost", p_xgb), ("lightgbm", p_lgb)):
        s = sessions[lib]
        got = s.run(None, {s.get_inputs()[0].name: xte})[1]
        got = np.asarray(got)[:, 1] if np.ndim(got) == 2 else got
        assert np.allclose(got, want, atol=1e-5), lib
    np.asarray(p_xgb, dtype=np.float32).tofile(OUT / "xgboost" / "expected.f32")
    np.asarray(p_lgb, dtype=np.float64).tofile(OUT / "lightgbm" / "expected.f64")
    p_rf = forest.predict_proba(xte)[:, 1]
    s = sessions["random_forest"]
    got = s.run(None, {s.get_inputs()[0].name: xte})[1][:, 1]
    assert np.allclose(got, p_rf, atol=1e-5), "random_forest"
    np.asarray(p_rf, dtype=np.float64).tofile(OUT / "random_forest" / "expected.f64")

    if skip_timing:
        return
    results = {"xgboost_version": xgb.__version__, "lightgbm_version": lgb.__version__,
               "onnxruntime_version": ort.__version__, "seconds": {}}
    for b in BATCHES:
        rows = np.ascontiguousarray(xte[:b])
        timings = {
            "xgboost inplace_predict": lambda: booster.inplace_predict(rows),
            "lightgbm predict": lambda: lgbm.predict(rows, num_threads=1),
            "scikit-learn predict_proba (random forest)": lambda: forest.predict_proba(rows),
        }
        for lib, s in sessions.items():
            name = s.get_inputs()[0].name
            timings[f"onnxruntime ({lib} ONNX)"] = (lambda s=s, name=name: s.run(None, {name: rows}))
        for what, fn in timings.items():
            results["seconds"].setdefault(what, {})[str(b)] = median_seconds(fn)
    (OUT / "reference.json").write_text(json.dumps(results, indent=1) + "\n")
    for what, by_batch in results["seconds"].items():
        cells = "  ".join(f"b{b}: {by_batch[str(b)] * 1e6:10.1f} µs" for b in BATCHES)
        print(f"{what:32} {cells}")


if __name__ == "__main__":
    main()
