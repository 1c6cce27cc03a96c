#!/usr/bin/env python3
"""Generate the side-by-side serving benchmark's models, input rows and oracles.

Owns target/bench-models/serving/ (not committed; regenerated in about a minute, seeded, so the
rows and oracle .npy files are byte-identical run to run; the onnxmltools/skl2onnx .onnx bytes
are not, because of generated node names, but they compute the same):

  models/mlp/model.onnx          MLP Gemm 256-512-512-10 (ReLU between), FP32, input "input"
                                 [N,256], output "output" [N,10], N dynamic
  models/cnn/model.onnx          ResNet-ish CNN on 3x64x64: stem conv 3->16 stride 2, three
                                 residual stages (16, 32, 64 channels; stride-2 3x3 convs between),
                                 global average pool, Gemm 64->10; input "input" [N,3,64,64],
                                 output "output" [N,10]
  models/xgboost/model.json      XGBoost, binary:logistic, 100 trees, max_depth 8, 20 features
  models/xgboost/model.onnx      the same, converted by onnxmltools (opset 15)
  models/lightgbm/model.txt      LightGBM, binary, 100 trees, 63 leaves
  models/lightgbm/model.onnx     the same, converted by onnxmltools (label output fixed to [N])
  models/random_forest/model.joblib  scikit-learn RandomForestClassifier, 100 trees, max_depth 8
  models/random_forest/model.onnx    the same, converted by skl2onnx (zipmap off)
      (the tree models mirror scripts/gen_bench_trees.py: make_classification 21,024 rows,
       20 features, seed 0; every ONNX input is named "input")
  data/<model>/rows.npy          256 input rows (FP32), the rows every check and load uses
  data/<model>/oracle.npy        what the rows must give: MLP/CNN the "output" logits from
                                 onnxruntime (1 thread); trees P(class 1) from the library's own
                                 predict (xgboost inplace_predict, lightgbm predict, sklearn
                                 predict_proba)
  data/<model>/perf_input.json   perf_analyzer --input-data: the first rows, batch dim dropped
  data/<model>/v2_request.json   one V2 JSON request body (row 0, shape [1, ...]) for wrk
  manifest.json                  per model: input name/shape, kind, tolerances, library versions

Usage: scripts/python-env.sh && .venv/bin/python bench/serving/gen_models.py [--force]
       (env BENCH_DATA=dir writes there instead)
(bench/serving/run.py calls it when manifest.json is missing.)
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(os.environ.get("BENCH_DATA", ROOT / "target" / "bench-models" / "serving"))
ROWS = 256
# rows put into perf_analyzer's --input-data (it cycles through them)
PERF_ROWS = {"mlp": 64, "cnn": 16}
PERF_ROWS_DEFAULT = 64
OPSET = 17


def ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def make_mlp(rng):
    from onnx import TensorProto, helper, numpy_helper

    sizes = [256, 512, 512, 10]
    inits, nodes = [], []
    x = "input"
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(sizes) - 2
        y = "output" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [y if last else f"g{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [y]))
        x = y
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    return finish(graph)


def make_cnn(rng):
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []
    counter = [0]

    def conv(x, cin, cout, stride, relu=True):
        i = counter[0]
        counter[0] += 1
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"conv{i}_w"), numpy_helper.from_array(b, f"conv{i}_b")])
        y = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, f"conv{i}_w", f"conv{i}_b"], [y],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]))
        if relu:
            nodes.append(helper.make_node("Relu", [y], [y + "_relu"]))
            y += "_relu"
        return y

    def residual(x, c):
        h = conv(x, c, c, 1)
        h = conv(h, c, c, 1, relu=False)
        i = counter[0]
        nodes.append(helper.make_node("Add", [x, h], [f"add{i}"]))
        nodes.append(helper.make_node("Relu", [f"add{i}"], [f"res{i}"]))
        return f"res{i}"

    x = conv("input", 3, 16, 2)          # 16 x 32 x 32
    x = residual(x, 16)
    x = conv(x, 16, 32, 2)               # 32 x 16 x 16
    x = residual(x, 32)
    x = conv(x, 32, 64, 2)               # 64 x 8 x 8
    x = residual(x, 64)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], axis=1))
    w = (rng.standard_normal((64, 10)) * np.sqrt(1.0 / 64)).astype(np.float32)
    b = (rng.standard_normal(10) * 0.01).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(b, "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"]))
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    return finish(graph)


def finish(graph):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ferroserve-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_data(name, rows, oracle, input_name="input"):
    d = OUT / "data" / name
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "rows.npy", rows)
    np.save(d / "oracle.npy", oracle)
    n = PERF_ROWS.get(name, PERF_ROWS_DEFAULT)
    entries = [{input_name: {"content": [float(v) for v in r.ravel()], "shape": list(r.shape)}}
               for r in rows[:n]]
    (d / "perf_input.json").write_text(json.dumps({"data": entries}, separators=(",", ":")))
    body = {"inputs": [{"name": input_name, "datatype": "FP32", "shape": [1, *rows.shape[1:]],
                        "data": [float(v) for v in rows[0].ravel()]}]}
    (d / "v2_request.json").write_text(json.dumps(body, separators=(",", ":")))


def nets(manifest):
    import onnx

    rng = np.random.default_rng(20261126)
    for name, make, shape in (("mlp", make_mlp, (256,)), ("cnn", make_cnn, (3, 64, 64))):
        model = make(rng)
        d = OUT / "models" / name
        d.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(d / "model.onnx"))
        rows = rng.standard_normal((ROWS, *shape)).astype(np.float32)
        s = ort_session(d / "model.onnx")
        oracle = s.run(None, {"input": rows})[0]
        write_data(name, rows, oracle)
        manifest["models"][name] = {
            "kind": "net", "input": "input", "shape": list(shape), "output": "output",
            "oracle": "onnxruntime logits [N,10]", "rtol": 1e-3, "atol": 1e-3,
            "files": {"onnx": f"models/{name}/model.onnx"},
        }


def trees(manifest):
    import joblib
    import lightgbm as lgb
    import onnx
    import onnxmltools
    import sklearn
    import xgboost as xgb
    from onnxmltools.convert.common.data_types import FloatTensorType
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType as SklFloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=21_024, n_features=20, n_informative=12, random_state=0)
    x = x.astype(np.float32)
    xtr, ytr = x[:-1024], y[:-1024]
    rows = np.ascontiguousarray(x[-1024:][:ROWS])
    for name in ("xgboost", "lightgbm", "random_forest"):
        (OUT / "models" / name).mkdir(parents=True, exist_ok=True)
    initial = [("input", FloatTensorType([None, 20]))]

    booster = xgb.train({"objective": "binary:logistic", "max_depth": 8, "eta": 0.1,
                         "tree_method": "hist", "nthread": 1, "seed": 0},
                        xgb.DMatrix(xtr, label=ytr, nthread=1), num_boost_round=100)
    booster.save_model(str(OUT / "models/xgboost/model.json"))
    onnxmltools.utils.save_model(
        onnxmltools.convert_xgboost(booster, initial_types=initial, target_opset=15),
        str(OUT / "models/xgboost/model.onnx"))

    lgbm = lgb.train({"objective": "binary", "num_leaves": 63, "learning_rate": 0.1,
                      "num_threads": 1, "seed": 0, "deterministic": True, "verbose": -1},
                     lgb.Dataset(xtr, label=ytr), num_boost_round=100)
    lgbm.save_model(str(OUT / "models/lightgbm/model.txt"))
    lgb_onnx = onnxmltools.convert_lightgbm(lgbm, initial_types=initial, target_opset=15,
                                            zipmap=False)
    for out in lgb_onnx.graph.output:  # onnxmltools declares label as [1]; it is [N]
        if out.name == "label":
            dims = out.type.tensor_type.shape.dim
            del dims[:]
            dims.add().dim_param = "N"
    onnx.save(lgb_onnx, str(OUT / "models/lightgbm/model.onnx"))

    forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1)
    forest.fit(xtr, ytr)
    joblib.dump(forest, OUT / "models/random_forest/model.joblib")
    rf_onnx = to_onnx(forest, initial_types=[("input", SklFloatTensorType([None, 20]))], options={"zipmap": False},
                      target_opset={"": 17, "ai.onnx.ml": 3})
    (OUT / "models/random_forest/model.onnx").write_bytes(rf_onnx.SerializeToString())

    oracles = {
        "xgboost": np.asarray(booster.inplace_predict(rows), dtype=np.float64),
        "lightgbm": np.asarray(lgbm.predict(rows, num_threads=1), dtype=np.float64),
        "random_forest": np.asarray(forest.predict_proba(rows)[:, 1], dtype=np.float64),
    }
    native = {"xgboost": "model.json", "lightgbm": "model.txt", "random_forest": "model.joblib"}
    for name, want in oracles.items():
        s = ort_session(OUT / "models" / name / "model.onnx")
        outs = {o.name: v for o, v in zip(s.get_outputs(), s.run(None, {"input": rows}))}
        got = np.asarray(outs["probabilities"])[:, 1]
        if not np.allclose(got, want, atol=1e-5):
            raise SystemExit(f"gen_models: the ONNX conversion of {name} disagrees with the library "
                             f"(max |diff| {np.abs(got - want).max():.3g})")
        write_data(name, rows, want)
        manifest["models"][name] = {
            "kind": "trees", "input": "input", "shape": [20], "output": "probabilities",
            "oracle": "P(class 1) from the library", "rtol": 0.0, "atol": 1e-4,
            "files": {"onnx": f"models/{name}/model.onnx", "native": f"models/{name}/{native[name]}"},
        }
    manifest["versions"].update({"xgboost": xgb.__version__, "lightgbm": lgb.__version__,
                                 "scikit-learn": sklearn.__version__,
                                 "onnxmltools": onnxmltools.__version__})


def main():
    import onnx
    import onnxruntime as ort

    if (OUT / "manifest.json").is_file() and "--force" not in sys.argv:
        print(f"gen_models: {OUT} exists (--force to regenerate)")
        return
    manifest = {"rows": ROWS, "models": {},
                "versions": {"onnx": onnx.__version__, "onnxruntime": ort.__version__,
                             "numpy": np.__version__}}
    nets(manifest)
    trees(manifest)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"gen_models: wrote {OUT}")


if __name__ == "__main__":
    main()
