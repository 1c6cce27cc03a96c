"""Writes tests/fixtures/drift/oracle.json: samples and scipy's answers on them, the oracle of
ferroserve's drift statistics (crates/core/src/profile.rs, checked by crates/core/tests/drift.rs).

- KS: scipy.stats.ks_2samp(a, b) statistic, ties included, and the p-value of Kolmogorov's
  limiting distribution, scipy.stats.kstwobign.sf(sqrt(nm / (n + m)) * D) (ks_2samp's own
  "asymp" p-value uses the finite-n kstwo instead, 2% higher at these sizes).
- PSI: scipy has none; the reference's deciles (numpy's linear quantiles, distinct values) are
  the interior bin edges, a bin's upper edge is inclusive (np.searchsorted(..., "left")), each
  share is floored at 1e-4, and PSI = sum((a - e) * ln(a / e)).
- chi-square: scipy.stats.chisquare(observed, expected shares * observed total).
"""

import json
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "drift" / "oracle.json"
FLOOR = 1e-4


def shares(edges, values):
    bins = np.searchsorted(edges, values, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    return counts / counts.sum()


def psi(reference, live):
    edges = np.unique(np.quantile(reference, np.arange(1, 10) / 10))
    e = np.maximum(shares(edges, reference), FLOOR)
    a = np.maximum(shares(edges, live), FLOOR)
    return edges, float(np.sum((a - e) * np.log(a / e)))


def main():
    rng = np.random.default_rng(20261126)
    reference = rng.normal(0.0, 1.0, 1000)
    cases = {
        "same": rng.normal(0.0, 1.0, 1000),
        "shifted": rng.normal(0.8, 1.0, 1000),
        "wider": rng.normal(0.0, 2.0, 500),
        # Rounded values: many ties within and across the samples.
        "ties": np.round(rng.normal(0.2, 1.0, 300), 1),
    }
    out = {"reference": reference.tolist(), "cases": []}
    for name, live in cases.items():
        ref = np.round(reference, 1) if name == "ties" else reference
        ks = stats.ks_2samp(ref, live, method="asymp")
        en = len(ref) * len(live) / (len(ref) + len(live))
        pvalue = stats.kstwobign.sf(np.sqrt(en) * ks.statistic)
        edges, index = psi(ref, live)
        out["cases"].append({
            "name": name,
            "rounded_reference": name == "ties",
            "live": live.tolist(),
            "ks_statistic": float(ks.statistic),
            "ks_pvalue": float(pvalue),
            "edges": edges.tolist(),
            "psi": index,
        })
    expected = np.array([0.5, 0.3, 0.2])
    observed = np.array([40.0, 35.0, 25.0])
    chi = stats.chisquare(observed, expected * observed.sum())
    out["chi_square"] = {
        "expected": expected.tolist(),
        "observed": observed.tolist(),
        "statistic": float(chi.statistic),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
