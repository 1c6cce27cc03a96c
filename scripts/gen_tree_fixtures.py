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
# numpy's and scipy's OpenBLAS pick their kernels by CPU, and AVX-512 kernels round differently
# from AVX2 ones: the trained weights then differ in their last bits from machine to machine.
# Haswell's (AVX2) kernels run on every x86-64 CI machine; the committed files were made with them.
if os.uname().machine == "x86_64":
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

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


def categorical_data(seed, n=600):
    """Two numeric features and one categorical feature (8 categories, ~10% NaN) whose
    categories carry most of the signal, so that trees split on it."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 3), dtype=np.float32)
    x[:, 0] = rng.normal(size=n)
    x[:, 1] = rng.normal(size=n)
    cat = rng.integers(0, 8, size=n)
    x[:, 2] = cat
    effect = np.array([2.0, -1.5, 0.5, -2.0, 1.0, -0.5, 1.5, -1.0])
    logit = effect[cat] + 0.7 * x[:, 0] + 0.3 * rng.normal(size=n)
    y = (logit > 0).astype(np.float32)
    x[rng.random(n) < 0.1, 2] = np.nan
    x[rng.random(n) < 0.05, 0] = np.nan
    return x, y


def datasets(class_dtype=None):
    """breast_cancer, iris and diabetes as float32 features; class labels cast to class_dtype
    (None keeps scikit-learn's integers), diabetes targets float64."""
    bc, ir, db = load_breast_cancer(), load_iris(), load_diabetes()
    cast = (lambda y: y) if class_dtype is None else (lambda y: y.astype(class_dtype))
    return (bc.data.astype(np.float32), cast(bc.target), ir.data.astype(np.float32),
            cast(ir.target), db.data.astype(np.float32), db.target.astype(np.float64))


def cases():
    xb, yb, xi, yi, xd, yd = datasets(np.float32)

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
    xc, yc = categorical_data(6)
    yield "binary_categorical", dict(binary, max_cat_to_onehot=1, max_depth=3), 10, split(
        xc, yc, 6)
    yield "binary_categorical_onehot", dict(binary, max_cat_to_onehot=9, max_depth=3), 10, split(
        xc, yc, 6)
    yield "reg_dart", dict(reg, objective="reg:squarederror", booster="dart", rate_drop=0.3,
                           one_drop=1), 10, split(xd, yd.astype(np.float32), 4)
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
        categorical = "categorical" in name
        types = {"feature_types": ["q", "q", "c"], "enable_categorical": True} if categorical else {}
        if len(data) == 6:
            xtr, ytr, xte, _yte, qtr, _qte = data
            dtrain = xgb.DMatrix(xtr, label=ytr, qid=qtr, missing=np.nan, nthread=1)
        else:
            xtr, ytr, xte, _yte = data
            dtrain = xgb.DMatrix(xtr, label=ytr, missing=np.nan, nthread=1, **types)
        booster = xgb.train(params, dtrain, num_boost_round=rounds)

        rows = np.ascontiguousarray(xte, dtype=np.float32)
        assert rows.shape[0] == N_ROWS
        dtest = xgb.DMatrix(rows, missing=np.nan, nthread=1, **types)
        if categorical:
            trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]
            assert any(any(t["split_type"]) for t in trees["trees"]), name
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


LGB_OUT = ROOT / "tests" / "fixtures" / "trees" / "lightgbm"


def lightgbm_cases():
    """(name, params, rounds, (xtr, ytr, xte, yte), categorical_feature, extra Dataset kwargs)."""
    xb, yb, xi, yi, xd, yd = datasets(np.float64)
    common = {"num_threads": 1, "seed": 0, "deterministic": True, "verbose": -1,
              "num_leaves": 15, "learning_rate": 0.2, "min_data_in_leaf": 5}
    rng = np.random.default_rng(7)
    xb_nan = with_nans(xb, 0.15, rng)
    # Zero-as-missing: a sparse-looking copy with many exact zeros and some NaNs.
    xb_zero = xb.copy()
    xb_zero[rng.random(xb.shape) < 0.3] = 0.0
    xb_zero = with_nans(xb_zero, 0.05, rng)
    xc, yc = categorical_data(8)

    yield "binary", dict(common, objective="binary"), 20, split(xb, yb, 1), "auto"
    yield "binary_nan", dict(common, objective="binary"), 20, split(xb_nan, yb, 1), "auto"
    yield "binary_zero_as_missing", dict(common, objective="binary", zero_as_missing=True), 20, \
        split(xb_zero, yb, 1), "auto"
    yield "binary_no_missing", dict(common, objective="binary", use_missing=False), 20, \
        split(xb_nan, yb, 1), "auto"
    yield "binary_sigmoid", dict(common, objective="binary", sigmoid=0.5), 20, split(xb, yb, 1), \
        "auto"
    yield "binary_categorical", dict(common, objective="binary", min_data_per_group=5,
                                     cat_smooth=1, max_cat_to_onehot=2), 20, split(xc, yc, 6), [2]
    yield "multiclass", dict(common, objective="multiclass", num_class=3), 10, split(xi, yi, 3), \
        "auto"
    yield "multiclassova", dict(common, objective="multiclassova", num_class=3), 10, \
        split(xi, yi, 3), "auto"
    yield "regression", dict(common, objective="regression"), 20, split(xd, yd, 4), "auto"
    yield "regression_sqrt", dict(common, objective="regression", reg_sqrt=True), 20, \
        split(xd, yd, 4), "auto"
    yield "regression_l1", dict(common, objective="regression_l1"), 20, split(xd, yd, 4), "auto"
    yield "poisson", dict(common, objective="poisson"), 20, split(xd, np.round(yd / 50.0), 4), \
        "auto"
    y01 = (yd - yd.min()) / (yd.max() - yd.min())
    yield "cross_entropy", dict(common, objective="cross_entropy"), 20, split(xd, y01, 4), "auto"
    yield "linear_tree", dict(common, objective="regression", linear_tree=True), 10, \
        split(with_nans(xd, 0.05, rng), yd, 4), "auto"
    yield "random_forest", dict(common, objective="binary", boosting="rf", bagging_freq=1,
                                bagging_fraction=0.7, feature_fraction=0.8), 10, \
        split(xb, yb, 1), "auto"


def lightgbm_main():
    import lightgbm as lgb

    summary = []
    for name, params, rounds, (xtr, ytr, xte, _yte), categorical in lightgbm_cases():
        dtrain = lgb.Dataset(xtr, label=ytr, categorical_feature=categorical,
                             params={"verbose": -1})
        booster = lgb.train(params, dtrain, num_boost_round=rounds)
        rows = np.ascontiguousarray(xte, dtype=np.float32)
        if name == "binary_categorical":
            # Categories LightGBM never saw, and a negative one, go right like NaN.
            rows[0, 2], rows[1, 2], rows[2, 2] = 11.0, -3.0, np.nan
            text = booster.model_to_string()
            assert "num_cat=0" not in text.split("Tree=0")[1].split("Tree=1")[0], name
        assert rows.shape[0] == N_ROWS
        pred = booster.predict(rows)
        raw = booster.predict(rows, raw_score=True)
        d = LGB_OUT / name
        d.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(d / "model.txt"))
        dump_json(d / "rows.json", {"shape": list(rows.shape), "data": floats(rows)})
        dump_json(d / "expected.json", {
            "objective": params["objective"],
            "num_class": int(params.get("num_class", 1)),
            "predict": [float(v) for v in np.asarray(pred, dtype=np.float64).ravel()],
            "predict_shape": list(np.shape(pred)),
            "raw": [float(v) for v in np.asarray(raw, dtype=np.float64).ravel()],
            "lightgbm_version": lgb.__version__,
        })
        summary.append((name, rows.shape[1], booster.num_trees(), (d / "model.txt").stat().st_size))
    print(f"lightgbm {lgb.__version__} -> {LGB_OUT.relative_to(ROOT)}")
    for name, f, trees, size in summary:
        print(f"{name:28} {f:>3} {trees:>5}  model.txt {size:>8}")


ONNXML_OUT = ROOT / "tests" / "fixtures" / "trees" / "onnxml"


def fit(model, x, y, seed):
    """The model fitted on the training part of a split, and the held-out rows."""
    xtr, ytr, xte, _ = split(x, y, seed)
    return model.fit(xtr, ytr), xte


def mixed_data(seed, n=400):
    """Three numeric columns (5% NaN) and two integer-coded categorical columns (4 and 3
    categories), for ColumnTransformer pipelines."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    x[:, 3] = rng.integers(0, 4, n)
    x[:, 4] = rng.integers(0, 3, n)
    y = ((x[:, 0] + x[:, 3] - 0.5 * x[:, 4] + 0.3 * rng.normal(size=n)) > 1).astype(int)
    nan = rng.random((n, 3)) < 0.05
    x[:, :3][nan] = np.nan
    return x, y


def onnxml_cases():
    """(name, fitted estimator, held-out rows, zipmap option or None for regressors)."""
    from sklearn.ensemble import (ExtraTreesRegressor, GradientBoostingClassifier,
                                  GradientBoostingRegressor, HistGradientBoostingClassifier,
                                  HistGradientBoostingRegressor, RandomForestClassifier,
                                  RandomForestRegressor)
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, SVR
    from sklearn.tree import DecisionTreeClassifier

    xb, yb, xi, yi, xd, yd = datasets()
    xb_nan = with_nans(xb, 0.1, np.random.default_rng(11))

    rf = dict(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    yield ("random_forest_classifier",) + fit(RandomForestClassifier(**rf), xi, yi, 3) + (False,)
    yield ("random_forest_classifier_zipmap",) + fit(RandomForestClassifier(**rf), xi, yi, 3) + (
        True,)
    names = np.array(load_iris().target_names)
    yield ("random_forest_string_labels",) + fit(RandomForestClassifier(**rf), xi, names[yi], 3) + (
        False,)
    yield ("random_forest_binary",) + fit(RandomForestClassifier(**rf), xb, yb, 1) + (False,)
    yield ("decision_tree_binary",) + fit(DecisionTreeClassifier(max_depth=5, random_state=0),
                                          xb, yb, 1) + (False,)
    yield ("gradient_boosting_binary",) + fit(
        GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0), xb, yb, 1) + (
        False,)
    yield ("gradient_boosting_multiclass",) + fit(
        GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0), xi, yi, 3) + (
        False,)
    yield ("random_forest_regressor",) + fit(RandomForestRegressor(**rf), xd, yd, 4) + (None,)
    yield ("extra_trees_regressor",) + fit(ExtraTreesRegressor(**rf), xd, yd, 4) + (None,)
    yield ("gradient_boosting_regressor",) + fit(
        GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0), xd, yd, 4) + (
        None,)
    yield ("logistic_regression",) + fit(LogisticRegression(max_iter=1000), xi, yi, 3) + (False,)
    yield ("logistic_regression_zipmap",) + fit(LogisticRegression(max_iter=1000), xi, yi, 3) + (
        True,)
    yield ("logistic_regression_binary",) + fit(LogisticRegression(max_iter=5000), xb, yb, 1) + (
        False,)
    yield ("svc_rbf",) + fit(SVC(probability=True, random_state=0), xi, yi, 3) + (False,)
    yield ("svc_binary_poly",) + fit(
        make_pipeline(StandardScaler(), SVC(kernel="poly", degree=2, probability=True,
                                            random_state=0)), xb, yb, 1) + (False,)
    yield ("svr_rbf",) + fit(SVR(C=50.0), xd, yd, 4) + (None,)
    yield ("linear_regression",) + fit(LinearRegression(), xd, yd, 4) + (None,)
    yield ("ridge",) + fit(Ridge(alpha=0.5), xd, yd, 4) + (None,)
    xm, ym = mixed_data(12)
    for est_name, est in (("logistic_regression", LogisticRegression(max_iter=1000)),
                          ("random_forest", RandomForestClassifier(**rf))):
        numeric = make_pipeline(SimpleImputer(), StandardScaler())
        columns = ColumnTransformer([("num", numeric, [0, 1, 2]),
                                     ("cat", OneHotEncoder(handle_unknown="ignore"), [3, 4])])
        yield (f"column_transformer_{est_name}",) + fit(make_pipeline(columns, est), xm, ym, 12) + (
            False,)
    yield ("imputer_scaler_logistic_regression",) + fit(
        make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000)),
        xb_nan, yb, 1) + (False,)
    # HistGradientBoosting learns where missing values go: the binary one is trained and scored
    # with NaNs. Not the others: skl2onnx 1.20 sends some NaNs the wrong way there (onnxruntime
    # disagrees with scikit-learn on 2 of 32 iris rows and 1 of 32 diabetes rows), so with NaNs
    # their files are not the model.
    hgb = dict(max_iter=15, random_state=0)
    yield ("hist_gradient_boosting_binary",) + fit(
        HistGradientBoostingClassifier(**hgb), xb_nan, yb, 1) + (False,)
    yield ("hist_gradient_boosting_multiclass",) + fit(
        HistGradientBoostingClassifier(**hgb), xi, yi, 3) + (False,)
    yield ("hist_gradient_boosting_regressor",) + fit(
        HistGradientBoostingRegressor(**hgb), xd, yd, 4) + (None,)


def onnxmltools_cases():
    """XGBoost and LightGBM models (scikit-learn API) converted by onnxmltools."""
    import lightgbm as lgb

    xb, yb, xi, yi, xd, yd = datasets()

    xgb_common = dict(n_estimators=20, max_depth=4, n_jobs=1, random_state=0, tree_method="hist")
    lgb_common = dict(n_estimators=20, num_leaves=15, n_jobs=1, random_state=0, verbose=-1)
    yield ("onnxmltools_xgboost_binary",) + fit(xgb.XGBClassifier(**xgb_common), xb, yb, 1) + (
        False,)
    yield ("onnxmltools_xgboost_multiclass",) + fit(xgb.XGBClassifier(**xgb_common), xi, yi, 3) + (
        False,)
    yield ("onnxmltools_xgboost_regressor",) + fit(xgb.XGBRegressor(**xgb_common), xd, yd, 4) + (
        None,)
    yield ("onnxmltools_lightgbm_binary",) + fit(lgb.LGBMClassifier(**lgb_common), xb, yb, 1) + (
        False,)
    yield ("onnxmltools_lightgbm_multiclass",) + fit(lgb.LGBMClassifier(**lgb_common), xi, yi,
                                                     3) + (False,)
    yield ("onnxmltools_lightgbm_regressor",) + fit(lgb.LGBMRegressor(**lgb_common), xd, yd, 4) + (
        None,)


def onnxmltools_convert(name, model, width, zipmap):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    initial = [("input", FloatTensorType([None, width]))]
    if "xgboost" in name:
        return onnxmltools.convert_xgboost(model, initial_types=initial, target_opset=15)
    options = {} if zipmap is None else {"zipmap": zipmap}
    return onnxmltools.convert_lightgbm(model, initial_types=initial, target_opset=15, **options)


def tree_ensemble_v5(forest, width, member_feature=None, categories=()):
    """A scikit-learn RandomForestRegressor (any number of targets) written as one ONNX
    `TreeEnsemble` node (ai.onnx.ml opset 5), which no converter emits yet, AVERAGE aggregation.
    Thresholds must be float32 like the input: each becomes the largest float32 not above
    scikit-learn's float64 threshold, which keeps `x <= t` exact for float32 rows.
    With `member_feature`, splits on that integer-coded feature become BRANCH_MEMBER of the
    `categories` at or below the threshold (the same tree for integer values; sets listed in
    node order, each ended by NaN, as the specification says)."""
    from onnx import TensorProto, helper, numpy_helper

    a = {k: [] for k in ("splits", "features", "modes", "true", "false", "true_leaf",
                         "false_leaf", "leaf_targets", "leaf_weights", "roots", "members")}
    for est in forest.estimators_:
        t = est.tree_
        internal = [i for i in range(t.node_count) if t.children_left[i] != -1]
        leaves = [i for i in range(t.node_count) if t.children_left[i] == -1]
        node_at = {n: len(a["splits"]) + k for k, n in enumerate(internal)}
        leaf_at = {}
        for n in leaves:
            for target in range(t.n_outputs):
                leaf_at.setdefault(n, len(a["leaf_targets"]))
                a["leaf_targets"].append(target)
                a["leaf_weights"].append(float(t.value[n][target][0]))
        assert all(t.n_outputs == 1 for _ in [0]), "one target per leaf entry below"
        a["roots"].append(node_at[0])
        for n in internal:
            t32 = np.float32(t.threshold[n])
            if float(t32) > t.threshold[n]:
                t32 = np.nextafter(t32, np.float32(-np.inf))
            a["splits"].append(t32)
            a["features"].append(int(t.feature[n]))
            if t.feature[n] == member_feature:
                a["modes"].append(6)  # BRANCH_MEMBER
                a["members"] += [c for c in categories if c <= t.threshold[n]] + [np.nan]
            else:
                a["modes"].append(0)  # BRANCH_LEQ
            for side, child in (("true", t.children_left[n]), ("false", t.children_right[n])):
                is_leaf = t.children_left[child] == -1
                a[side].append(leaf_at[child] if is_leaf else node_at[child])
                a[side + "_leaf"].append(int(is_leaf))
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml",
        nodes_splits=numpy_helper.from_array(np.array(a["splits"], dtype=np.float32)),
        nodes_featureids=a["features"],
        nodes_modes=numpy_helper.from_array(np.array(a["modes"], dtype=np.uint8)),
        nodes_truenodeids=a["true"], nodes_falsenodeids=a["false"],
        nodes_trueleafs=a["true_leaf"], nodes_falseleafs=a["false_leaf"],
        leaf_targetids=a["leaf_targets"],
        leaf_weights=numpy_helper.from_array(np.array(a["leaf_weights"], dtype=np.float32)),
        tree_roots=a["roots"], aggregate_function=0, n_targets=1)
    if a["members"]:
        node.attribute.append(helper.make_attribute(
            "membership_values",
            numpy_helper.from_array(np.array(a["members"], dtype=np.float32))))
    graph = helper.make_graph(
        [node], "tree_ensemble_v5",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("ai.onnx.ml", 5)])


def plain_attribute_values():
    """skl2onnx 1.20 hands onnx lists mixing numpy and Python scalars for scikit-learn 1.9's
    HistGradientBoosting trees (`uint8` and `bool` missing-value flags, `uint32` node ids),
    which `onnx.helper.make_attribute` rejects. Its values are right; only their Python types
    are not, so they are made plain before the attribute is built."""
    import onnx.helper

    make_attribute = onnx.helper.make_attribute

    def plain(v):
        if isinstance(v, (bool, np.bool_, np.integer)):
            return int(v)
        return float(v) if isinstance(v, np.floating) else v

    def patched(key, value, *args, **kwargs):
        if isinstance(value, (list, tuple)):
            value = [plain(v) for v in value]
        return make_attribute(key, value, *args, **kwargs)

    onnx.helper.make_attribute = patched


def onnxml_main():
    import warnings

    import onnxruntime as ort
    import skl2onnx
    from skl2onnx import to_onnx

    warnings.filterwarnings("ignore")
    plain_attribute_values()
    summary = []
    from sklearn.ensemble import RandomForestRegressor

    db = load_diabetes()
    xtr, ytr, xte, _ = split(db.data.astype(np.float32), db.target, 4)
    v5_forest = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    cases = [c + (False,) for c in onnxml_cases()] + [c + (True,) for c in onnxmltools_cases()]
    cases.append(("tree_ensemble_v5_random_forest", v5_forest.fit(xtr, ytr), xte, None, "v5"))
    # Feature 0 an integer category 1..9 (0 is avoided: onnx's reference evaluator ends a set
    # at any falsy value); held-out rows add values between and beyond the categories and NaN,
    # where membership and `<=` differ, so the oracle there is onnx's reference evaluator.
    rng = np.random.default_rng(5)
    xm = np.column_stack([rng.integers(1, 10, 400), rng.normal(size=(400, 3))]).astype(np.float32)
    ym = np.isin(xm[:, 0], [2, 3, 7]) * 3.0 + xm[:, 1] + rng.normal(scale=0.1, size=400)
    rows_m = xm[-N_ROWS:].copy()
    rows_m[:6, 0] = [2.5, 0.0, 11.0, -1.0, np.nan, 9.5]
    member_forest = RandomForestRegressor(n_estimators=8, max_depth=5, random_state=0, n_jobs=1)
    cases.append(("tree_ensemble_v5_member", member_forest.fit(xm[:-N_ROWS], ym[:-N_ROWS]),
                  rows_m, None, "v5-member"))
    for name, model, rows, zipmap, via_onnxmltools in cases:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        assert rows.shape[0] == N_ROWS
        reference = None
        if via_onnxmltools == "v5":
            onx = tree_ensemble_v5(model, rows.shape[1])
            from onnx.reference import ReferenceEvaluator
            ref = ReferenceEvaluator(onx).run(None, {"X": rows})[0]
            np.testing.assert_allclose(np.ravel(ref), model.predict(rows), rtol=1e-5, err_msg=name)
        elif via_onnxmltools == "v5-member":
            onx = tree_ensemble_v5(model, rows.shape[1], member_feature=0, categories=range(1, 10))
            from onnx.reference import ReferenceEvaluator
            reference = np.ravel(ReferenceEvaluator(onx).run(None, {"X": rows})[0])
            integral = np.isin(rows[:, 0], np.arange(1, 10))
            assert integral.sum() >= N_ROWS - 6
            np.testing.assert_allclose(reference[integral], model.predict(rows[integral]),
                                       rtol=1e-5, err_msg=name)
        elif via_onnxmltools:
            onx = onnxmltools_convert(name, model, rows.shape[1], zipmap)
        else:
            options = None if zipmap is None else {"zipmap": zipmap}
            onx = to_onnx(model, rows[:1], options=options,
                          target_opset={"": 17, "ai.onnx.ml": 3})
        # The files must be reproducible: onnxmltools names the graph with a random UUID, and
        # the converters list opset imports in set order, which varies with hash seeds.
        onx.graph.name = name
        imports = sorted(onx.opset_import, key=lambda o: o.domain)
        del onx.opset_import[:]
        onx.opset_import.extend(imports)
        d = ONNXML_OUT / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.onnx").write_bytes(onx.SerializeToString())
        dump_json(d / "rows.json", {"shape": list(rows.shape), "data": floats(rows)})
        expected = {"sklearn_version": __import__("sklearn").__version__,
                    "skl2onnx_version": skl2onnx.__version__,
                    "ops": sorted({n.op_type for n in onx.graph.node}),
                    "outputs": [o.name for o in onx.graph.output]}
        if reference is not None:
            expected["kind"] = "regressor"
            expected["oracle"] = "onnx.reference.ReferenceEvaluator"
            expected["predict"] = [float(v) for v in reference]
        elif zipmap is None:
            expected["kind"] = "regressor"
            expected["predict"] = [float(v) for v in np.asarray(model.predict(rows)).ravel()]
        else:
            expected["kind"] = "classifier"
            expected["label"] = [v if isinstance(v, str) else int(v)
                                 for v in model.predict(rows).tolist()]
            expected["probabilities"] = [float(v) for v in model.predict_proba(rows).ravel()]
        # onnxruntime on the same file, for reference (not the oracle).
        session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: rows})
        if zipmap is None:
            np.testing.assert_allclose(np.ravel(got[0]), expected["predict"], rtol=1e-4, atol=1e-3)
        else:
            probabilities = got[1] if not isinstance(got[1], list) else [list(r.values()) for r in got[1]]
            np.testing.assert_allclose(np.ravel(probabilities), expected["probabilities"],
                                       atol=1e-4, err_msg=name)
        dump_json(d / "expected.json", expected)
        summary.append((name, expected["ops"]))
    print(f"skl2onnx {skl2onnx.__version__} -> {ONNXML_OUT.relative_to(ROOT)}")
    for name, ops in summary:
        print(f"{name:36} {' '.join(ops)}")


if __name__ == "__main__":
    main()
    lightgbm_main()
    onnxml_main()
