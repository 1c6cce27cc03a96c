#!/usr/bin/env python3
"""Generate ferroserve's bundled example model repository and its oracles, deterministically.

Owns:
  examples/models/<model>/1/model.onnx      digits_mlp, iris_logreg, cnn
  examples/oracles/<model>/request.json     KServe V2 infer request: 16 rows of the TEST split
  examples/oracles/<model>/expected.json    onnxruntime's outputs for that request (V2-response-like)
  examples/oracles/<model>/library.json     the training library's own predict/predict_proba
                                            (scikit-learn models only)
  examples/oracles/<model>/perf_input.json  perf_analyzer --input-data file: the same 16 rows as
                                            batch-1 entries (shape without the batch dim)

Run it with the project venv (created by scripts/python-env.sh):

    scripts/python-env.sh && .venv/bin/python scripts/gen_models.py

Models:
  digits_mlp   sklearn MLPClassifier (64, 32) on load_digits; input 'input' FP32 [N, 64] = the 8x8
               pixel values divided by 16 (so in [0, 1]); outputs 'label' INT64 [N] and
               'probabilities' FP32 [N, 10]. Converted by skl2onnx with zipmap disabled.
  iris_logreg  sklearn LogisticRegression on load_iris; input 'input' FP32 [N, 4] (raw cm
               measurements); outputs 'label' INT64 [N], 'probabilities' FP32 [N, 3].
  cnn          hand-built with onnx.helper (opset 17), He-initialised weights from a seeded RNG:
               input 'input' FP32 [N, 1, 8, 8] (digits pixels / 16), Conv(8,3x3,pad 1)+Relu,
               Conv(16,3x3,pad 1)+Relu, MaxPool 2x2, GlobalAveragePool, Flatten, Gemm -> 'logits'
               FP32 [N, 10]. Untrained; its oracle is onnxruntime (cross-checked against numpy).

Opsets: ai.onnx 17, ai.onnx.ml 3. The batch dimension is symbolic in every model.
Determinism: fixed seeds, single-threaded BLAS and onnxruntime; the oracle JSON files are
byte-identical from run to run (and the .onnx files too, as far as the converters allow).
The script fails loudly if onnxruntime and scikit-learn disagree (labels must be equal,
probabilities within rtol 1e-5 / atol 1e-6).
"""

import os

# Single-threaded numeric libraries, set before numpy is imported: keeps training and inference
# bit-for-bit reproducible whatever the core count of the machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# numpy's and scipy's OpenBLAS pick their kernels by CPU, and AVX-512 kernels round differently
# from AVX2 ones: the trained weights then differ in their last bits from machine to machine.
# Haswell's (AVX2) kernels run on every x86-64 CI machine; the committed files were made with them.
if os.uname().machine == "x86_64":
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.datasets import load_digits, load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"
ORACLES = ROOT / "examples" / "oracles"
DATA = ROOT / "examples" / "data"

SEED = 0
N_ROWS = 16  # rows of the test split used in the oracles
OPSET = 17
ML_OPSET = 3
TARGET_OPSET = {"": OPSET, "ai.onnx.ml": ML_OPSET}
RTOL, ATOL = 1e-5, 1e-6

written: list[Path] = []


# ----------------------------------------------------------------------------- helpers
def f32_list(a: np.ndarray) -> list[float]:
    """Flat row-major list of Python floats holding the exact float32 values."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, separators=(",", ":")) + "\n"
    path.write_text(text)
    written.append(path)


def save_model(model: onnx.ModelProto, name: str) -> Path:
    onnx.checker.check_model(model, full_check=True)
    path = MODELS / name / "1" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString(deterministic=True))
    written.append(path)
    return path


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def v2_tensor(name: str, arr: np.ndarray) -> dict:
    if arr.dtype == np.float32:
        return {"name": name, "datatype": "FP32", "shape": list(arr.shape), "data": f32_list(arr)}
    if arr.dtype == np.int64:
        return {"name": name, "datatype": "INT64", "shape": list(arr.shape),
                "data": [int(v) for v in arr.ravel()]}
    raise TypeError(f"unexpected dtype {arr.dtype} for {name}")


def op_types(model: onnx.ModelProto) -> list[str]:
    seen = []
    for node in model.graph.node:
        key = f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        if key not in seen:
            seen.append(key)
    return seen


def normalise_converted(model: onnx.ModelProto) -> onnx.ModelProto:
    """Tidy a skl2onnx graph without changing what it computes.

    - opset imports: skl2onnx declares the lowest opsets its nodes need (ai.onnx 16 or 17,
      ai.onnx.ml 1), sometimes with the default domain listed twice; declare exactly ai.onnx 17
      and ai.onnx.ml 3 instead (none of the ops it emits changed between those versions; the
      checker below re-validates the graph against the new opsets).
    - batch dim: skl2onnx writes FloatTensorType([None, k])'s None as a dimension with neither
      value nor name; name it 'N' on every graph input and output, like the cnn model.
    - node names, producer, doc string: stable values (op type + index), for reproducible bytes.
    """
    used = {n.domain or "" for n in model.graph.node}
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", OPSET))
    if "ai.onnx.ml" in used:
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    for vi in list(model.graph.input) + list(model.graph.output):
        dim0 = vi.type.tensor_type.shape.dim[0]
        if not dim0.HasField("dim_value"):
            dim0.dim_param = "N"
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    model.producer_name = "ferroserve-gen_models"
    model.producer_version = "1"
    model.doc_string = ""
    model.graph.name = "main"
    return model


def write_oracles(name: str, x: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    """request.json, expected.json and perf_input.json for one model."""
    d = ORACLES / name
    write_json(d / "request.json", {"inputs": [v2_tensor("input", x)]})
    write_json(d / "expected.json", {"outputs": [v2_tensor(k, v) for k, v in outputs.items()]})
    write_json(d / "perf_input.json", {
        "data": [{"input": {"content": f32_list(row), "shape": list(row.shape)}} for row in x]
    })


def check_against_library(name: str, onnx_label, onnx_proba, sk_label, sk_proba) -> None:
    if not np.array_equal(onnx_label.astype(np.int64), sk_label.astype(np.int64)):
        bad = np.nonzero(onnx_label != sk_label)[0]
        sys.exit(f"FATAL {name}: onnxruntime labels differ from scikit-learn at rows {bad.tolist()}")
    if not np.allclose(onnx_proba, sk_proba, rtol=RTOL, atol=ATOL):
        err = np.abs(onnx_proba.astype(np.float64) - sk_proba)
        sys.exit(f"FATAL {name}: onnxruntime probabilities differ from scikit-learn "
                 f"(max abs err {err.max():.3g}, tolerance rtol {RTOL} atol {ATOL})")


def summary(name: str, model: onnx.ModelProto, extra: str) -> None:
    print(f"{name:12s} {extra}")
    print(f"{'':12s} ops: {', '.join(op_types(model))}")


# ----------------------------------------------------------------------------- sklearn models
def write_csv(path: Path, columns: list[str], target: str, x: np.ndarray, y: np.ndarray) -> None:
    """A data file with a header: the features (float32, shortest repr) then the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(columns + [target])]
    for row, label in zip(x, y):
        lines.append(",".join([str(v) for v in row] + [str(int(label))]))
    path.write_text("\n".join(lines) + "\n")
    written.append(path)


def sklearn_model(name: str, clf, x_train, y_train, x_test, y_test, n_features: int,
                  columns: list[str], target: str) -> None:
    # The splits as files: the training rows make the reference profile (`ferroserve
    # profile`), the held-out rows stand for live traffic from the same distribution.
    write_csv(DATA / name / "train.csv", columns, target, x_train, y_train)
    write_csv(DATA / name / "test.csv", columns, target, x_test, y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning must fail the run
        clf.fit(x_train, y_train)
    onx = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    onx = normalise_converted(onx)
    path = save_model(onx, name)
    names = [o.name for o in onx.graph.output]
    assert names == ["label", "probabilities"], names

    sess = session(path)
    label_all, proba_all = sess.run(["label", "probabilities"], {"input": x_test})
    sk_label_all, sk_proba_all = clf.predict(x_test), clf.predict_proba(x_test)
    check_against_library(name, label_all, proba_all, sk_label_all, sk_proba_all)

    x = x_test[:N_ROWS]
    label, proba = sess.run(["label", "probabilities"], {"input": x})
    assert label.dtype == np.int64 and proba.dtype == np.float32, (label.dtype, proba.dtype)
    write_oracles(name, x, {"label": label, "probabilities": proba})
    sk_label, sk_proba = clf.predict(x), clf.predict_proba(x)
    check_against_library(name, label, proba, sk_label, sk_proba)
    write_json(ORACLES / name / "library.json", {
        "library": "scikit-learn",
        "estimator": type(clf).__name__,
        "label": [int(v) for v in sk_label],
        "probabilities": [[float(p) for p in row] for row in sk_proba],
    })
    acc_sk = float(np.mean(sk_label_all == y_test))
    acc_onnx = float(np.mean(label_all == y_test))
    max_err = float(np.max(np.abs(proba_all.astype(np.float64) - sk_proba_all)))
    summary(name, onx, f"test accuracy sklearn {acc_sk:.4f} onnxruntime {acc_onnx:.4f} "
                       f"({len(y_test)} rows); max |proba diff| {max_err:.2g}; agree: yes")


def digits_split():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.25, random_state=SEED, stratify=d.target)


def gen_digits_mlp() -> None:
    x_train, x_test, y_train, y_test = digits_split()
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=2000, random_state=SEED)
    columns = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    sklearn_model("digits_mlp", clf, x_train, y_train, x_test, y_test, 64, columns, "digit")


def gen_iris_logreg() -> None:
    d = load_iris()
    x = d.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, d.target, test_size=0.25, random_state=SEED, stratify=d.target)
    clf = LogisticRegression(max_iter=1000, random_state=SEED)
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    sklearn_model("iris_logreg", clf, x_train, y_train, x_test, y_test, 4, columns, "species")


# ----------------------------------------------------------------------------- CNN
def he(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def cnn_numpy(x, w1, b1, w2, b2, wf, bf) -> np.ndarray:
    """Independent float64 reference forward pass of the CNN graph."""
    def conv3x3_pad1(a, w, b):
        n, c, h, wd = a.shape
        p = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = np.stack([p[:, :, i:i + h, j:j + wd] for i in range(3) for j in range(3)], axis=2)
        # cols: [n, c, 9, h, w]; w: [o, c, 3, 3] -> [o, c, 9]
        return np.einsum("nckhw,ock->nohw", cols, w.reshape(w.shape[0], c, 9)) + b[None, :, None, None]

    a = np.maximum(conv3x3_pad1(x.astype(np.float64), w1, b1), 0)
    a = np.maximum(conv3x3_pad1(a, w2, b2), 0)
    n, c, h, wd = a.shape
    a = a.reshape(n, c, h // 2, 2, wd // 2, 2).max(axis=(3, 5))
    a = a.mean(axis=(2, 3))
    return a @ wf.T.astype(np.float64) + bf


def gen_cnn() -> None:
    rng = np.random.default_rng(SEED)
    w1 = he(rng, (8, 1, 3, 3), 1 * 9)
    b1 = (rng.standard_normal(8) * 0.01).astype(np.float32)
    w2 = he(rng, (16, 8, 3, 3), 8 * 9)
    b2 = (rng.standard_normal(16) * 0.01).astype(np.float32)
    wf = he(rng, (10, 16), 16)  # Gemm with transB=1: [out, in]
    bf = (rng.standard_normal(10) * 0.01).astype(np.float32)

    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w1, "conv1.weight"), (b1, "conv1.bias"), (w2, "conv2.weight"), (b2, "conv2.bias"),
              (wf, "fc.weight"), (bf, "fc.bias")]]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("MaxPool", ["relu2"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ferroserve-gen_models", producer_version="1")
    model.ir_version = 8  # the IR version that goes with opset 17
    path = save_model(model, "cnn")

    _, x_test, _, y_test = digits_split()
    x_all = x_test.reshape(-1, 1, 8, 8)
    sess = session(path)
    (logits_all,) = sess.run(["logits"], {"input": x_all})
    ref = cnn_numpy(x_all, w1, b1, w2, b2, wf, bf)
    if not np.allclose(logits_all, ref, rtol=1e-4, atol=1e-5):
        sys.exit(f"FATAL cnn: onnxruntime differs from the numpy reference "
                 f"(max abs err {np.max(np.abs(logits_all - ref)):.3g})")

    x = x_all[:N_ROWS]
    (logits,) = sess.run(["logits"], {"input": x})
    write_oracles("cnn", x, {"logits": logits})
    acc = float(np.mean(np.argmax(logits_all, axis=1) == y_test))
    summary("cnn", model, f"untrained (accuracy {acc:.4f} ~ chance); onnxruntime vs numpy max "
                          f"|diff| {np.max(np.abs(logits_all - ref)):.2g}")


def main() -> None:
    print(f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    gen_digits_mlp()
    gen_iris_logreg()
    gen_cnn()
    print("wrote:")
    for p in written:
        print(f"  {p.relative_to(ROOT)} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
