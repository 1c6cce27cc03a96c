"""`ferroserve.spark.score` in Spark local[2]: a Parquet file scored through `mapInArrow`
gives exactly the CLI's answers for the same file, and each Python worker loads the model
once. Everything listens on loopback."""

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"

pyspark = pytest.importorskip("pyspark")

import ferroserve.spark  # noqa: E402

FEATURES = [f"f{i}" for i in range(30)]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("ferroserve-test")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, root):
    """20,000 rows around the XGBoost fixture's, a few values missing, in 4 files."""
    import json

    rows = json.loads((root / "tests/fixtures/trees/xgboost/binary_logistic/rows.json").read_text())
    base = np.array(rows["data"], dtype=np.float32).reshape(rows["shape"])
    rng = np.random.default_rng(7)
    n = 20_000
    x = base[rng.integers(0, len(base), n)] * rng.normal(1.0, 0.05, (n, 30)).astype(np.float32)
    x[rng.random((n, 30)) < 0.01] = np.nan
    directory = tmp_path_factory.mktemp("in")
    for part in range(4):
        lo, hi = part * n // 4, (part + 1) * n // 4
        columns = {"id": pa.array(np.arange(lo, hi), pa.int64())}
        for j, name in enumerate(FEATURES):
            columns[name] = pa.array(x[lo:hi, j], pa.float32(), from_pandas=True)
        pq.write_table(pa.table(columns), directory / f"part-{part}.parquet", row_group_size=2000)
    return directory


def test_spark_scores_like_the_cli(spark, parquet, repo, ferroserve_bin, tmp_path):
    model = str(repo / "xgb")
    cli_out = tmp_path / "cli.parquet"
    subprocess.run(
        [str(ferroserve_bin), "batch", "--model", model, "--input", str(parquet),
         "--output", str(cli_out), "--columns", ",".join(FEATURES), "--keep", "id",
         "--progress", "off"],
        check=True,
    )
    expected = pq.read_table(cli_out).sort_by("id")

    df = spark.read.parquet(str(parquet))
    scored = ferroserve.spark.score(df, model, columns=FEATURES, keep=["id"])
    assert scored.columns == ["id", "label", "probabilities_0", "probabilities_1", "_error"]
    spark_out = tmp_path / "spark"
    scored.write.parquet(str(spark_out))
    got = pq.read_table(spark_out).sort_by("id")

    assert got.num_rows == expected.num_rows == 20_000
    assert got.column("id").equals(expected.column("id"))
    for name in ("label", "probabilities_0", "probabilities_1"):
        np.testing.assert_array_equal(
            got.column(name).to_numpy(), expected.column(name).to_numpy(), err_msg=name
        )
    assert got.column("_error").null_count == 20_000


def test_each_worker_loads_the_model_once(spark, parquet, repo):
    model = str(repo / "xgb")

    def loads_per_worker(batches):
        import os

        import pyarrow as pa

        import ferroserve

        m = ferroserve.cached_model(model)
        for batch in batches:
            m.predict_arrow(batch, columns=FEATURES)
        yield pa.RecordBatch.from_pydict(
            {"pid": [os.getpid()], "loads": [ferroserve.loads()]}
        )

    df = spark.read.parquet(str(parquet)).repartition(12)
    rows = df.mapInArrow(loads_per_worker, "pid long, loads long").collect()
    assert len(rows) == 12
    by_pid = {}
    for r in rows:
        by_pid.setdefault(r.pid, set()).add(r.loads)
    # Every task of a reused worker saw the one model its first task loaded.
    assert all(loads == {1} for loads in by_pid.values()), by_pid
    assert len(by_pid) <= 2 + 1
