"""The likelihood test's calibration over many fresh draws of the figures test scenes: figures-p90
with its matched control figures-p50 and a random-weight copy per draw (`bias.likelihood_draws`,
the library's design), one JSON file per draw, so that runs resume and split across processes.

    python scripts/bias_draws.py --seeds 30000-30049 --out docs/experiments/bias-draws/calibration
    python scripts/bias_draws.py --seeds 30000-30024 --out DIR --threads 1 &    # two cores: two halves
    python scripts/bias_draws.py --seeds 30025-30049 --out DIR --threads 1 &
    python scripts/bias_draws.py --summarise DIR      # the table (DIR/summary.txt, DIR/summary.json)
    python scripts/bias_draws.py --summarise DIR --ship   # and into the bundled models (draws.json)

Per model: mean d over draws (standard error), how many draws give p < 0.05 by the crossed test
(the library's p) and by iEAT's target-only permutation p, the model-minus-control difference, the
paired test (the model's bits minus the control's), and how often runs of 2, 3 or 5 draws reach a
combined p < 0.05.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm

from igpt_lite import bias
from igpt_lite.checkpoint import load_checkpoint, resolve

WHO = {"model": "figures-p90", "control": "figures-p50", "baseline": "random-weight copies"}
RUNS = (2, 3, 5)  # draws a run, for the combined p
DESIGNS = ((16, 16), (32, 8), (64, 4), (32, 16), (64, 8), (32, 32), (64, 16))  # targets × attributes, predicted


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def run(seeds, out: Path, n_targets: int, n_attributes: int) -> None:
    p90, p50 = load_checkpoint("figures-p90"), load_checkpoint("figures-p50")
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = out / f"draw-{seed}.json"
        if path.exists():
            continue
        t0 = time.perf_counter()
        r = bias.likelihood_draws(p90, [seed], control=p50, n_targets=n_targets, n_attributes=n_attributes)
        d = r.to_dict()["draws"][0] | {"n_targets": n_targets, "n_attributes": n_attributes,
                                        "seconds": time.perf_counter() - t0}
        for who, bits in r.bits[0].items():  # t, df and the variance parts: what a larger design would give
            d[who]["crossed"] = vars(bias.crossed_test(bits))
            # every composed scene's bits, so that other tests on the same draw need no new forward pass
            d[who]["bits"] = {k: np.round(v, 4).tolist() for k, v in bits.items()}
        path.write_text(json.dumps(d))
        print(f"seed {seed}: " + ", ".join(f"{w} d {d[w]['effect_size']:+.2f} p {d[w]['p_value']:.3g}" for w in WHO),
              flush=True)


def with_paired(draw: dict) -> dict:
    """The draw with its paired test (model's bits minus the control's), from the stored bits where
    the file predates it: the row `bias.likelihood_draws` gives (its permutations and seed)."""
    if "paired" not in draw and "bits" in draw["model"]:
        diff = bias.paired_bits(draw["model"]["bits"], draw["control"]["bits"])
        draw["paired"] = bias.likelihood_row(diff, seed=draw["seed"], n_permutations=draw["model"]["n_permutations"],
                                             n_bootstrap=2_000).to_dict()
    return draw


def group_rates(p_values: np.ndarray, k: int) -> tuple[int, int, float]:
    """Runs of k draws: (disjoint runs in seed order with combined p < 0.05, how many runs, the share
    over every set of k of the draws)."""
    from itertools import combinations

    runs = [bias.combined_p(p_values[i:i + k]) for i in range(0, len(p_values) - k + 1, k)]
    every = bias.combined_p(p_values[np.array(list(combinations(range(len(p_values)), k)))])
    return int((np.array(runs) < 0.05).sum()), len(runs), float((every < 0.05).mean())


def predicted_detection(parts: list[dict], n_targets: int, n_attributes: int) -> list[tuple[int, int, float, float]]:
    """Detection by one draw at other designs, from the crossed test's measured variance parts:
    V = 2 σ²_T / targets + 2 σ²_A / attributes + 4 σ²_E / (targets × attributes) (σ² from the mean
    parts at the measured design), t = mean D / √V, share ≈ Φ(t − z₀.₉₅). [(targets, attributes, t, share)]"""
    v_t, v_a, v_e = (np.mean([p[k] for p in parts]) for k in ("var_targets", "var_attributes", "var_residual"))
    s2_e = v_e * n_targets * n_attributes / 4
    s2_t, s2_a = max(v_t - v_e, 0) * n_targets / 2, max(v_a - v_e, 0) * n_attributes / 2
    d = np.mean([p["difference"] for p in parts])
    rows = []
    for nt, na in DESIGNS:
        t = d / np.sqrt(2 * s2_t / nt + 2 * s2_a / na + 4 * s2_e / (nt * na))
        rows.append((nt, na, float(t), float(norm.sf(norm.isf(0.05) - t))))
    return rows


def summarise(out: Path, ship: bool = False) -> None:
    draws = [with_paired(json.loads(p.read_text())) for p in sorted(out.glob("draw-*.json"))]
    sizes = {(d["n_targets"], d["n_attributes"]) for d in draws}
    if len(sizes) != 1:
        raise SystemExit(f"{out} mixes designs {sizes}: summarise one design at a time")
    n = len(draws)
    who = WHO | ({"paired": "paired: figures-p90 − figures-p50 bits"} if all("paired" in x for x in draws) else {})
    rows, runs, table = [], [], {}
    for w, label in who.items():
        d = np.array([x[w]["effect_size"] for x in draws])
        crossed = np.array([x[w]["p_value"] for x in draws])
        targets = np.array([x[w]["p_targets"] for x in draws])
        table[w] = {"draws": n, "mean_d": d.mean(), "se": d.std(ddof=1) / np.sqrt(n), "sd": d.std(ddof=1),
                    "crossed_significant": int((crossed < 0.05).sum()), "targets_significant": int((targets < 0.05).sum()),
                    "combined_p_all": bias.combined_p(crossed)}
        t = table[w]
        rows.append(f"| {label} | {n} | {t['mean_d']:+.3f} ({t['se']:.3f}) | {t['sd']:.3f} | "
                    f"{t['crossed_significant']}/{n} ({t['crossed_significant'] / n:.0%}) | "
                    + f"{t['targets_significant']}/{n} ({t['targets_significant'] / n:.0%}) |")
        cells = []
        for k in [k for k in RUNS if k <= n]:
            hit, m, share = group_rates(crossed, k)
            t[f"runs_of_{k}"] = {"significant": hit, "runs": m, "share_of_every_subset": share}
            cells.append(f"{hit}/{m} ({share:.0%})")
        runs.append(f"| {label} | " + " | ".join(cells) + " |")
    predicted = []
    if all("bits" in x["model"] for x in draws):
        parts = {"model": [vars(bias.crossed_test(x["model"]["bits"])) for x in draws],
                 "paired": [vars(bias.crossed_test(bias.paired_bits(x["model"]["bits"], x["control"]["bits"])))
                            for x in draws]}
        for w, p in parts.items():
            rows_w = predicted_detection(p, *next(iter(sizes)))
            table[w]["predicted"] = [dict(zip(("targets", "attributes", "t", "detected"), r)) for r in rows_w]
            predicted.append(f"| {who[w]} | " + " | ".join(f"{share:.0%} (t {t:.1f})" for _, _, t, share in rows_w) + " |")
    diff = np.array([x["model"]["effect_size"] - x["control"]["effect_size"] for x in draws])
    table["difference"] = {"mean": diff.mean(), "se": diff.std(ddof=1) / np.sqrt(n), "positive": int((diff > 0).sum())}
    seeds = sorted(x["seed"] for x in draws)
    (nt, na), = sizes
    text = "\n".join([
        f"{n} draws (seeds {seeds[0]}–{seeds[-1]}), {nt} targets and {na} attributes a set "
        f"({4 * nt * na} composed scenes a model a draw), {np.mean([x['seconds'] for x in draws]):.0f} s a draw",
        "", "One draw:", "",
        "| model | draws | mean d (s.e.) | SD of d | p < 0.05, crossed test | p < 0.05, iEAT's targets-only p |",
        "|---|---|---|---|---|---|", *rows, "",
        f"difference in d, figures-p90 − figures-p50 on the same draw: {diff.mean():+.3f} (s.e. "
        f"{diff.std(ddof=1) / np.sqrt(n):.3f}), positive in {(diff > 0).sum()} of {n} draws", "",
        "Runs of several draws, combined p (Stouffer) < 0.05: disjoint runs in seed order (share over every "
        "set of that many of the draws):", "",
        "| model | " + " | ".join(f"{k} draws" for k in RUNS if k <= n) + " |",
        "|---|" + "---|" * len([k for k in RUNS if k <= n]), *runs,
        *(["", "Predicted detection by one draw at other designs (targets × attributes a set; cost ∝ their "
           "product), from the crossed test's variance parts measured here:", "",
           "| model | " + " | ".join(f"{a} × {b}" for a, b in DESIGNS) + " |", "|---|" + "---|" * len(DESIGNS),
           *predicted] if predicted else [])])
    (out / "summary.txt").write_text(text + "\n")
    study = json.dumps({"seeds": seeds, "n_targets": nt, "n_attributes": na, "names": who, "table": table}, indent=1)
    (out / "summary.json").write_text(study)
    print(text)
    if ship:  # the bias page shows the study beside both models' draws section
        for name in ("figures-p90", "figures-p50"):
            path = resolve(name) / bias.STUDY_FILE
            path.write_text(study)
            print(f"wrote {path}")


def chart(out: Path, png: Path) -> None:
    """`bias.draws_chart` of DIR's draws as a PNG (headless Chromium), as the library draws a run."""
    import shutil
    import tempfile
    from dataclasses import fields

    from igpt_lite.figures import save_figures

    names = {f.name for f in fields(bias.BiasRow)}

    def row(d: dict) -> bias.BiasRow:  # a stored row, without the bits and crossed parts kept beside it
        return bias.BiasRow(**{k: v for k, v in d.items() if k in names})

    draws = []
    for x in (with_paired(json.loads(p.read_text())) for p in sorted(out.glob("draw-*.json"))):
        draws.append(bias.Draw(seed=x["seed"], **{w: row(x[w]) for w in ("model", "baseline", "control", "paired")}))
    result = bias.DrawsResult(model=WHO["model"], control=WHO["control"], draws=draws,
                              n_targets=x["n_targets"], n_attributes=x["n_attributes"])
    with tempfile.TemporaryDirectory() as tmp:
        written = save_figures([bias.draws_chart(result)], Path(tmp) / "chart.html")
        if len(written) < 2:
            raise SystemExit("no PNG written: headless Chromium (/usr/bin/chromium) is needed")
        shutil.copy(written[1], png)
    print(f"wrote {png}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=seed_range, default=None, help="FIRST-LAST, one draw each")
    p.add_argument("--out", type=Path, default=Path("runs/bias-draws"))
    p.add_argument("--targets", type=int, default=bias.DESIGN["targets"])
    p.add_argument("--attributes", type=int, default=bias.DESIGN["attributes"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--summarise", type=Path, default=None, metavar="DIR", help="only summarise DIR's draws")
    p.add_argument("--chart", type=Path, default=None, metavar="PNG", help="with --summarise: also draw "
                   "bias.draws_chart of DIR's draws into PNG")
    p.add_argument("--ship", action="store_true", help="with --summarise: also write the summary into both "
                   f"bundled models' folders as {bias.STUDY_FILE} (the bias page shows it)")
    args = p.parse_args()
    if args.summarise:
        summarise(args.summarise, args.ship)
        return chart(args.summarise, args.chart) if args.chart else None
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.seeds, args.out, args.targets, args.attributes)


if __name__ == "__main__":
    main()
