#!/usr/bin/env bash
# Owns: the batch-scoring benchmark, and its report bench/results/batch-<date>.md
# (+ .jsonl, every run's raw figures). Goal: `ferroserve batch` at least 3x the rows/s of each
# library's own predict in pandas chunks (xgboost, lightgbm, onnxruntime) on 10 M rows x 20
# features with the 100-tree models, on both cores; `ferroserve.spark.score` within 1.2x the
# time of a no-op `mapInArrow` in Spark local[2]; and the peak memory of `ferroserve batch` on a
# ~2 GB CSV.
#
# Steps: scripts/batch-env.sh (.venv-batch); the ferroserve wheel into it (maturin, unless
# SKIP_WHEEL=1); bench/batch/models.sh (target/bench-models/batch-repo); bench/batch/gen_data.py
# (target/bench-data/batch/rows-<ROWS>.parquet, and the ~2 GB CSV for the memory leg); then RUNS
# rounds, each running every ferroserve/library pair once, the pair's order swapped every other
# round; then the Spark legs in one session (spark.py: a warm-up round, then RUNS rounds of
# no-op and score); then the memory leg under GNU time; then ferroserve's answers against the
# library's (compare.py), and the report (report.py). Exits 1 when an answer disagrees.
#
# How each leg is timed: ferroserve: the wall clock of the whole process, from the shell
# (timed.py); libraries: library.py's own clock from model load to the closed output file
# (Python's start and imports not counted); Spark: the action alone. Build first:
#   cargo build --release -p ferroserve
#   bench/batch/run.sh                    # 10-15 min at 10 M rows, plus ~2 min of data the 1st time
#   ROWS=200000 RUNS=1 LEGS="xgboost spark" SKIP_WHEEL=1 bench/batch/run.sh     # a smoke run
#
# Settings (environment):
#   ROWS           rows of the Parquet input (10000000)
#   RUNS           rounds per leg (3); medians are reported
#   LEGS           any of: xgboost lightgbm onnx onnx-lightgbm spark memory
#                  (default "xgboost lightgbm onnx spark memory"; onnx = the XGBoost model's
#                  ONNX conversion: ferroserve's ONNX-ML interpreter vs onnxruntime)
#   BATCH_ROWS     rows per chunk / model call / Arrow batch, every leg (65536)
#   THREADS        library threads (nproc); ferroserve uses every core
#   FERROSERVE_BIN the binary (target/release/ferroserve)
#   SKIP_WHEEL=1   do not build/install the ferroserve wheel (Spark's score leg then runs only
#                  if the package is already installed in .venv-batch)
#   MEMORY_SIZE    size of the memory leg's CSV (2GB = 2e9 bytes)
#   MEMORY_GOAL_MB if set, the memory leg's peak RSS must be at most this
#   CHECK=0        skip the answer check
#   RESULTS_DIR / RESULTS_NAME   where the report goes (bench/results, batch-<date>)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi

ROWS="${ROWS:-10000000}"
RUNS="${RUNS:-3}"
LEGS="${LEGS:-xgboost lightgbm onnx spark memory}"
BATCH_ROWS="${BATCH_ROWS:-65536}"
THREADS="${THREADS:-$(nproc)}"
FERROSERVE_BIN="${FERROSERVE_BIN:-target/release/ferroserve}"
MEMORY_SIZE="${MEMORY_SIZE:-2GB}"
CHECK="${CHECK:-1}"
RESULTS_DIR="${RESULTS_DIR:-bench/results}"
RESULTS_NAME="${RESULTS_NAME:-batch-$(date +%F)}"

PY="$ROOT/.venv-batch/bin/python"
HERE="$ROOT/bench/batch"
REPO="$ROOT/target/bench-models/batch-repo"
WORK="$ROOT/target/bench-data/batch/run"
RESULTS="$WORK/results.jsonl"
COLUMNS_LIST="$(seq -s, -f 'f%g' 0 19)"

say() { echo "batch-bench: $*" >&2; }
has_leg() { [[ " $LEGS " == *" $1 "* ]]; }
for leg in $LEGS; do
    case "$leg" in
        xgboost | lightgbm | onnx | onnx-lightgbm | spark | memory) ;;
        *)
            say "unknown leg '$leg' in LEGS (xgboost lightgbm onnx onnx-lightgbm spark memory)"
            exit 2
            ;;
    esac
done

# --- environment, ferroserve, models, data ---------------------------------------------------
bash scripts/batch-env.sh

if [[ " $LEGS " =~ " "(xgboost|lightgbm|onnx|onnx-lightgbm|memory)" " ]]; then
    if [[ ! -x "$FERROSERVE_BIN" ]]; then
        say "no $FERROSERVE_BIN: cargo build --release -p ferroserve (or set FERROSERVE_BIN)"
        exit 2
    fi
    FERROSERVE_BIN="$(cd "$(dirname "$FERROSERVE_BIN")" && pwd)/$(basename "$FERROSERVE_BIN")"
fi

SPARK_LEGS="noop,score"
if has_leg spark; then
    if [[ "${SKIP_WHEEL:-0}" != 1 ]]; then
        say "building the ferroserve wheel (maturin build --release)"
        rm -f target/wheels/ferroserve-*.whl
        env -u VIRTUAL_ENV .venv-batch/bin/maturin build --release -i "$PY" \
            -m crates/python/Cargo.toml -o target/wheels
        wheel="$(ls -t target/wheels/ferroserve-*.whl | head -1)"
        # --no-deps: the pinned .venv-batch already has what the package needs (pyarrow).
        .venv-batch/bin/pip install -q --force-reinstall --no-deps "$wheel"
    fi
    if ! "$PY" -c 'import ferroserve.spark' 2>/dev/null; then
        say "ferroserve.spark is not installed in .venv-batch (SKIP_WHEEL=1): Spark no-op leg only"
        SPARK_LEGS="noop"
    fi
fi

bash "$HERE/models.sh"
DATA="$("$PY" "$HERE/gen_data.py" "$ROWS" | tail -1)"
if has_leg memory; then
    say "the memory leg's CSV ($MEMORY_SIZE; about 1 min the first time)"
    BIG="$("$PY" "$HERE/gen_data.py" --size "$MEMORY_SIZE" | tail -1)"
    BIG_ROWS="$(basename "$BIG" .csv)"; BIG_ROWS="${BIG_ROWS#rows-}"
fi

rm -rf "$WORK"
mkdir -p "$WORK" "$RESULTS_DIR"
: >"$RESULTS"

# --- the legs --------------------------------------------------------------------------------
ferroserve_leg() {  # ferroserve_leg LEG MODEL_DIR INPUT ROWS RUN [timed.py flags...]
    local leg="$1" model="$2" input="$3" rows="$4" run="$5" out="$WORK/$1.parquet"
    shift 5
    rm -rf "$out"
    say "round $run: $leg"
    "$PY" "$HERE/timed.py" --leg "$leg" --run "$run" --rows "$rows" "$@" -- \
        "$FERROSERVE_BIN" batch --model "$REPO/$model" --input "$input" --output "$out" \
        --columns "$COLUMNS_LIST" --keep id --batch-rows "$BATCH_ROWS" --progress off \
        >>"$RESULTS"
}

library_leg() {  # library_leg NAME LIB MODEL_FILE RUN
    local name="$1" lib="$2" model="$3" run="$4"
    say "round $run: library-$name"
    "$PY" "$HERE/timed.py" --leg "library-$name" --run "$run" --rows "$ROWS" -- \
        "$PY" "$HERE/library.py" --lib "$lib" --model "$REPO/$model" --input "$DATA" \
        --output "$WORK/library-$name.parquet" --batch-rows "$BATCH_ROWS" --threads "$THREADS" \
        >>"$RESULTS"
}

# The pairs: LEGS word, ferroserve model dir, library leg name, library, library's model file.
PAIRS=()
has_leg xgboost && PAIRS+=("xgboost xgboost xgboost xgboost xgboost/1/model.json")
has_leg lightgbm && PAIRS+=("lightgbm lightgbm lightgbm lightgbm lightgbm/1/model.txt")
ORT=onnxruntime
has_leg onnx && PAIRS+=("onnx xgboost_onnx $ORT-xgboost $ORT xgboost_onnx/1/model.onnx")
has_leg onnx-lightgbm &&
    PAIRS+=("onnx-lightgbm lightgbm_onnx $ORT-lightgbm $ORT lightgbm_onnx/1/model.onnx")

for ((run = 1; run <= RUNS; run++)); do
    for pair in "${PAIRS[@]}"; do
        read -r _ model libname lib libmodel <<<"$pair"
        if ((run % 2)); then
            ferroserve_leg "ferroserve-$model" "$model" "$DATA" "$ROWS" "$run"
            library_leg "$libname" "$lib" "$libmodel" "$run"
        else
            library_leg "$libname" "$lib" "$libmodel" "$run"
            ferroserve_leg "ferroserve-$model" "$model" "$DATA" "$ROWS" "$run"
        fi
    done
done

if has_leg spark; then
    say "Spark local[2]: $SPARK_LEGS, warm-up + $RUNS rounds, one session"
    "$PY" "$HERE/spark.py" --input "$DATA" --legs "$SPARK_LEGS" --runs "$RUNS" \
        --model "$REPO/xgboost" --max-records "$BATCH_ROWS" >>"$RESULTS"
fi

if has_leg memory; then
    say "memory: ferroserve batch on $BIG under GNU time"
    ferroserve_leg memory xgboost "$BIG" "$BIG_ROWS" 1 --gnu-time
    rm -rf "$WORK/memory.parquet"
fi

# --- answers ---------------------------------------------------------------------------------
status=0
if [[ "$CHECK" == 1 ]]; then
    for pair in "${PAIRS[@]}"; do
        read -r word model libname _ _ <<<"$pair"
        say "checking ferroserve's $model answers against $libname"
        "$PY" "$HERE/compare.py" --name "$word" --library "$WORK/library-$libname.parquet" \
            --ferroserve "$WORK/ferroserve-$model.parquet" >>"$RESULTS" || status=1
    done
fi

# --- report ----------------------------------------------------------------------------------
version="$([[ -x "$FERROSERVE_BIN" ]] && "$FERROSERVE_BIN" --version 2>/dev/null || true)"
FERROSERVE_VERSION="$version" \
ROWS="$ROWS" RUNS="$RUNS" BATCH_ROWS="$BATCH_ROWS" THREADS="$THREADS" DATA="$DATA" \
BIG="${BIG:-}" MEMORY_GOAL_MB="${MEMORY_GOAL_MB:-}" SPARK_LEGS="$SPARK_LEGS" \
"$PY" - "$WORK/meta.json" <<'EOF'
import datetime, importlib.metadata as md, json, os, platform, sys
env = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
            if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
versions = ", ".join(f"{p} {md.version(p)}" for p in ("pyspark", "pyarrow", "pandas", "numpy",
                     "xgboost-cpu", "lightgbm", "onnxruntime"))
try:
    versions += f", ferroserve (package) {md.version('ferroserve')}"
except md.PackageNotFoundError:
    pass
notes = []
if "score" not in env["SPARK_LEGS"].split(","):
    notes.append("Spark score leg not run: no ferroserve package in .venv-batch (SKIP_WHEEL=1).")
meta = {
    "date": datetime.date.today().isoformat(), "rows": int(env["ROWS"]), "runs": int(env["RUNS"]),
    "batch_rows": int(env["BATCH_ROWS"]), "threads": int(env["THREADS"]),
    "input_mb": round(os.path.getsize(env["DATA"]) / 1e6),
    "machine": f"{os.cpu_count()} vCPU {cpu}, {mem / 2**20:.0f} GiB, {platform.platform()}",
    "ferroserve": env.get("FERROSERVE_VERSION") or None, "versions": versions,
    "models": "XGBoost 100 trees depth 8 and LightGBM 100 trees 63 leaves, binary, 20 features "
              "(scripts/gen_bench_trees.py), and their onnxmltools conversions",
    "notes": notes,
}
if env.get("BIG"):
    meta["memory_input_mb"] = round(os.path.getsize(env["BIG"]) / 1e6)
if env.get("MEMORY_GOAL_MB"):
    meta["memory_goal_mb"] = float(env["MEMORY_GOAL_MB"])
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

md="$RESULTS_DIR/$RESULTS_NAME.md"
"$PY" "$HERE/report.py" "$RESULTS" "$WORK/meta.json" >"$md"
cp "$RESULTS" "$RESULTS_DIR/$RESULTS_NAME.jsonl"
cat "$md"
say "wrote $md and $RESULTS_DIR/$RESULTS_NAME.jsonl"
if [[ "$status" != 0 ]]; then
    say "ferroserve's answers DISAGREE with the library's (see the Answers table)"
fi
exit "$status"
