"""Shared fixtures of the Python package's tests: the repository root, the CLI binary, and a
repository holding an XGBoost fixture model next to the example models."""

import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def ferroserve_bin():
    """The CLI, to compare the package's answers with `ferroserve batch`'s."""
    path = pathlib.Path(os.environ.get("FERROSERVE_BIN", ROOT / "target/debug/ferroserve"))
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists():
        pytest.fail(f"{path} is missing: build it (cargo build -p ferroserve) or set FERROSERVE_BIN")
    return path


@pytest.fixture(scope="session")
def repo(tmp_path_factory):
    """`iris_logreg` (ONNX-ML), `digits_mlp` (ONNX) and `xgb` (an XGBoost binary classifier)."""
    repo = tmp_path_factory.mktemp("repo")
    for name in ("iris_logreg", "digits_mlp"):
        shutil.copytree(ROOT / "examples/models" / name, repo / name)
    (repo / "xgb/1").mkdir(parents=True)
    shutil.copy(
        ROOT / "tests/fixtures/trees/xgboost/binary_logistic/model.json", repo / "xgb/1/model.json"
    )
    return repo
