#!/usr/bin/env python3
"""Generate XGBoost tree-model fixtures (model + rows + the library's own outputs), deterministically.

Owns:
  tests/fixtures/trees/xgboost/<case>/model.json     booster.save_model(...) in XGBoost's JSON format
  tests/fixtures/trees/xgboost/<case>/model.ubj      the same booster in UBJSON (binary JSON)
  tests/fixtures/trees/xgboost/<case>/rows.json      32 held-out rows:
                                                     {"shape": [32, F], "data": [row-major float32,
                                                      NaN written as null]}
  tests/fixtures/trees/xgboost/<case>/expected.json  xgboost's own predictions on those rows:
      {"objective", "num_class", "predict", "predict_shape", "margin", "margin_shape", ...}
      predict = booster.predict(DMatrix(rows_f32, missing=nan))  (transformed: probability,
                value, class index for multi:softmax, raw score for rank:pairwise)
      margin  = the same with output_margin=True
      Floats are the float32 outputs converted to Python float (exact, shortest repr).

Run it with the project venv (created by scripts/python-env.sh, which pins xgboost-cpu):

    scripts/python-env.sh && .venv/bin/python scripts/gen_tree_fixtures.py

Cases (all trained with xgboost.train, tree_method=hist, nthread=1, seed=0, base_score left at its
default so that the model carries XGBoost's learned intercept, except binary_logistic_base_score):
  binary_logistic             breast_cancer, binary:logistic, 20 rounds, max_depth 4
  binary_logistic_base_score  same, with base_score=0.3 explicitly
  binary_logistic_nan         same data with ~15% of train AND test feature values set to NaN
                              (default directions matter)
  multi_softprob              iris, multi:softprob, num_class 3, 10 rounds, max_depth 3
  multi_softmax               iris, multi:softmax,  num_class 3, 10 rounds, max_depth 3
  reg_squarederror            diabetes, reg:squarederror, 20 rounds, max_depth 4
  reg_logistic                diabetes with targets min-max scaled to [0, 1], reg:logistic
  count_poisson               diabetes with targets round(y / 50) (non-negative ints), count:poisson
  rank_pairwise               random features, 40 query groups of 8 docs, graded labels 0..3,
                              rank:pairwise (prediction == margin: raw ranking score)

Determinism: fixed seeds and a single thread; running twice yields byte-identical files.
The script asserts that `predict` equals the objective's transform of `margin` (float32 tolerance).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "trees" / "xgboost"
N_ROWS = 32
SEED = 0


def split(x, y, seed, n_test=N_ROWS, groups=None):
    """Random train/test split; the last n_test shuffled rows are held out."""
    idx = np.random.default_rng(seed).permutation(len(x))
    tr, te = idx[:-n_test], idx[-n_test:]
    return x[tr], y[tr], x[te], y[te]


def with_nans(x, frac, rng):
    x = x.copy()
    x[rng.random(x.shape) < frac] = np.nan
    return x


def ranking_data(seed):
    rng = np.random.default_rng(seed)
    n_groups, per_group, n_feat = 40, 8, 6
    x = rng.normal(size=(n_groups * per_group, n_feat)).astype(np.float32)
    w = rng.normal(size=n_feat)
    score = x @ w + 0.5 * rng.normal(size=len(x))
    # Graded relevance 0..3 by quartile of the noisy score.
    y = np.digitize(score, np.quantile(score, [0.25, 0.5, 0.75])).astype(np.float32)
    qid = np.repeat(np.arange(n_groups), per_group)
    # Hold out the last 4 groups (32 rows) whole.
    n_te = N_ROWS
    return (x[:-n_te], y[:-n_te], qid[:-n_te]), (x[-n_te:], y[-n_te:], qid[-n_te:])


def cases():
    bc = load_breast_cancer()
    xb, yb = bc.data.astype(np.float32), bc.target.astype(np.float32)
    ir = load_iris()
    xi, yi = ir.data.astype(np.float32), ir.target.astype(np.float32)
    db = load_diabetes()
    xd, yd = db.data.astype(np.float32), db.target.astype(np.float64)

    common = {"tree_method": "hist", "nthread": 1, "seed": SEED}
    binary = dict(common, objective="binary:logistic", max_depth=4, eta=0.3)
    multi = dict(common, num_class=3, max_depth=3, eta=0.3)
    reg = dict(common, max_depth=4, eta=0.3)

    yield "binary_logistic", binary, 20, split(xb, yb, 1)
    yield "binary_logistic_base_score", dict(binary, base_score=0.3), 20, split(xb, yb, 1)
    rng = np.random.default_rng(2)
    xb_nan = with_nans(xb, 0.15, rng)
    yield "binary_logistic_nan", binary, 20, split(xb_nan, yb, 1)
    yield "multi_softprob", dict(multi, objective="multi:softprob"), 10, split(xi, yi, 3)
    yield "multi_softmax", dict(multi, objective="multi:softmax"), 10, split(xi, yi, 3)
    yield "reg_squarederror", dict(reg, objective="reg:squarederror"), 20, split(
        xd, yd.astype(np.float32), 4)
    y01 = ((yd - yd.min()) / (yd.max() - yd.min())).astype(np.float32)
    yield "reg_logistic", dict(reg, objective="reg:logistic"), 20, split(xd, y01, 4)
    ycount = np.round(yd / 50.0).astype(np.float32)
    yield "count_poisson", dict(reg, objective="count:poisson"), 20, split(xd, ycount, 4)
    (xtr, ytr, qtr), (xte, yte, qte) = ranking_data(5)
    yield "rank_pairwise", dict(common, objective="rank:pairwise", max_depth=3, eta=0.3), 10, (
        xtr, ytr, xte, yte, qtr, qte)


def floats(a):
    """Flat list of Python floats of float32 values; NaN -> None (JSON null)."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def check_transform(objective, pred, margin):
    m = margin.astype(np.float64)
    if objective in ("binary:logistic", "reg:logistic"):
        want = 1.0 / (1.0 + np.exp(-m))
    elif objective == "count:poisson":
        want = np.exp(m)
    elif objective == "multi:softprob":
        e = np.exp(m - m.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
    elif objective == "multi:softmax":
        want = np.argmax(m, axis=1).astype(np.float64)
    else:  # reg:squarederror, rank:pairwise: identity
        want = m
    np.testing.assert_allclose(pred, want, rtol=1e-5, atol=1e-6, err_msg=objective)


def dump_json(path, obj):
    path.write_text(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")


def main():
    summary = []
    for name, params, rounds, data in cases():
        if len(data) == 6:
            xtr, ytr, xte, _yte, qtr, _qte = data
            dtrain = xgb.DMatrix(xtr, label=ytr, qid=qtr, missing=np.nan, nthread=1)
        else:
            xtr, ytr, xte, _yte = data
            dtrain = xgb.DMatrix(xtr, label=ytr, missing=np.nan, nthread=1)
        booster = xgb.train(params, dtrain, num_boost_round=rounds)

        rows = np.ascontiguousarray(xte, dtype=np.float32)
        assert rows.shape[0] == N_ROWS
        dtest = xgb.DMatrix(rows, missing=np.nan, nthread=1)
        pred = booster.predict(dtest)
        margin = booster.predict(dtest, output_margin=True)
        check_transform(params["objective"], pred, margin)

        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(d / "model.json"))
        booster.save_model(str(d / "model.ubj"))
        dump_json(d / "rows.json", {"shape": list(rows.shape), "data": floats(rows)})
        cfg = json.loads(booster.save_config())
        base_score = cfg["learner"]["learner_model_param"]["base_score"]
        dump_json(d / "expected.json", {
            "objective": params["objective"],
            "num_class": int(params.get("num_class", 0)),
            "predict": floats(pred),
            "predict_shape": list(pred.shape),
            "margin": floats(margin),
            "margin_shape": list(margin.shape),
            "num_trees": booster.num_boosted_rounds() * max(1, int(params.get("num_class", 1))),
            "base_score_config": base_score,
            "xgboost_version": xgb.__version__,
        })
        sizes = {f.name: f.stat().st_size for f in sorted(d.iterdir())}
        summary.append((name, rows.shape[1], len(booster.get_dump()), sizes))

    print(f"xgboost {xgb.__version__} -> {OUT.relative_to(ROOT)}")
    print(f"{'case':28} {'F':>3} {'trees':>5}  model.json  model.ubj  rows.json  expected.json")
    total = 0
    for name, f, trees, s in summary:
        total += sum(s.values())
        print(f"{name:28} {f:>3} {trees:>5}  {s['model.json']:>10}  {s['model.ubj']:>9}  "
              f"{s['rows.json']:>9}  {s['expected.json']:>13}")
    print(f"total bytes: {total}")


if __name__ == "__main__":
    main()
