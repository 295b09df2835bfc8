"""The likelihood test's calibration over many fresh draws of the figures test scenes: figures-p90
with its matched control figures-p50 and a random-weight copy per draw (`bias.likelihood_draws`,
the library's design: counterfactual quads), one JSON file per draw, so that runs resume and split
across processes.

    python scripts/bias_draws.py --seeds 31000-31049 --out docs/experiments/bias-draws/quads
    python scripts/bias_draws.py --seeds 31000-31024 --out DIR --threads 1 &    # two cores: two halves
    python scripts/bias_draws.py --seeds 31025-31049 --out DIR --threads 1 &
    python scripts/bias_draws.py --summarise DIR      # the table (DIR/summary.txt, DIR/summary.json)
    python scripts/bias_draws.py --summarise DIR --ship   # and into the bundled models (draws.json)

Per model: mean d over draws (standard error), how many draws give p < 0.05 by the quads test (the
library's p) and by iEAT's target-only permutation p, the model-minus-control difference, the paired
test (the model's bits minus the control's), how often runs of 2, 3 or 5 draws reach a combined
p < 0.05, and the detection one draw would give at other numbers of quads.

(The crossed design's calibration in docs/experiments/bias-draws/calibration/ was made by this script
as it was at commit f839864.)
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import nct, t as student_t

from igpt_lite import bias
from igpt_lite.checkpoint import load_checkpoint, resolve

WHO = {"model": "figures-p90", "control": "figures-p50", "baseline": "random-weight copies"}
RUNS = (2, 3, 5)  # draws a run, for the combined p
SIZES = (8, 16, 32, 64, 128, 256)  # quads a draw, predicted


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def run(seeds, out: Path, n_quads: int) -> None:
    p90, p50 = load_checkpoint("figures-p90"), load_checkpoint("figures-p50")
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = out / f"draw-{seed}.json"
        if path.exists():
            continue
        t0 = time.perf_counter()
        r = bias.likelihood_draws(p90, [seed], control=p50, n_quads=n_quads)
        d = r.to_dict()["draws"][0] | {"n_quads": n_quads, "seconds": time.perf_counter() - t0}
        for who, bits in r.bits[0].items():
            d[who]["quads"] = vars(bias.quads_test(bits))
            # every scene's bits, so that other tests on the same draw need no new forward pass
            d[who]["bits"] = {k: np.round(v, 4).tolist() for k, v in bits.items()}
        path.write_text(json.dumps(d))
        print(f"seed {seed}: " + ", ".join(f"{w} d {d[w]['effect_size']:+.2f} p {d[w]['p_value']:.3g}" for w in WHO),
              flush=True)


def quads_q(draw: dict, who: str) -> np.ndarray:
    """Each quad's q in bits (`bias.quad_differences`), for "model", "control", "baseline" or "paired"."""
    return bias.quad_differences(bias.paired_bits(draw["model"]["bits"], draw["control"]["bits"]) if who == "paired"
                                 else draw[who]["bits"])


def group_rates(p_values: np.ndarray, k: int) -> tuple[int, int, float]:
    """Runs of k draws: (disjoint runs in seed order with combined p < 0.05, how many runs, the share
    over every set of k of the draws)."""
    from itertools import combinations

    runs = [bias.combined_p(p_values[i:i + k]) for i in range(0, len(p_values) - k + 1, k)]
    every = bias.combined_p(p_values[np.array(list(combinations(range(len(p_values)), k)))])
    return int((np.array(runs) < 0.05).sum()), len(runs), float((every < 0.05).mean())


def predicted_detection(q: list[np.ndarray]) -> list[tuple[int, float, float]]:
    """Detection by one draw at other numbers of quads, from q's mean and SD over all the draws'
    quads: t = mean / SD × √quads, share = P(noncentral t > the 5% critical value). [(quads, t, share)]"""
    allq = np.concatenate(q)
    dz = allq.mean() / allq.std(ddof=1)
    return [(n, float(dz * np.sqrt(n)), float(nct.sf(student_t.isf(0.05, n - 1), n - 1, dz * np.sqrt(n))))
            for n in SIZES]


def summarise(out: Path, ship: bool = False) -> None:
    draws = [json.loads(p.read_text()) for p in sorted(out.glob("draw-*.json"))]
    sizes = {d.get("n_quads") for d in draws}
    if len(sizes) != 1 or None in sizes:
        raise SystemExit(f"{out} mixes designs {sizes} (or holds crossed draws): summarise one quads design at a time")
    n, (n_quads,) = len(draws), sizes
    who = WHO | {"paired": "paired: figures-p90 − figures-p50 bits"}
    rows, runs, predicted, spread, table = [], [], [], [], {}
    for w, label in who.items():
        d = np.array([x[w]["effect_size"] for x in draws])
        p = np.array([x[w]["p_value"] for x in draws])
        targets = np.array([x[w]["p_targets"] for x in draws])
        q = [quads_q(x, w) for x in draws]
        table[w] = {"draws": n, "mean_d": d.mean(), "se": d.std(ddof=1) / np.sqrt(n), "sd": d.std(ddof=1),
                    "significant": int((p < 0.05).sum()), "targets_significant": int((targets < 0.05).sum()),
                    "combined_p_all": bias.combined_p(p)}
        t = table[w]
        rows.append(f"| {label} | {n} | {t['mean_d']:+.3f} ({t['se']:.3f}) | {t['sd']:.3f} | "
                    f"{t['significant']}/{n} ({t['significant'] / n:.0%}) | "
                    + f"{t['targets_significant']}/{n} ({t['targets_significant'] / n:.0%}) |")
        cells = []
        for k in [k for k in RUNS if k <= n]:
            hit, m, share = group_rates(p, k)
            t[f"runs_of_{k}"] = {"significant": hit, "runs": m, "share_of_every_subset": share}
            cells.append(f"{hit}/{m} ({share:.0%})")
        runs.append(f"| {label} | " + " | ".join(cells) + " |")
        rows_w = predicted_detection(q)
        t["predicted"] = [dict(zip(("quads", "t", "detected"), r)) for r in rows_w]
        predicted.append(f"| {label} | " + " | ".join(f"{share:.0%} (t {tt:.1f})" for _, tt, share in rows_w) + " |")
        # a model that is the same on every draw has draw means of q that vary as one draw's s.e. says;
        # random copies, one a draw, also vary by how much each copy leans
        means = np.array([x.mean() for x in q])
        within = np.mean([x.var(ddof=1) / len(x) for x in q])
        t["between_over_within"] = float(means.var(ddof=1) / within)
        spread.append(f"| {label} | {np.concatenate(q).mean():+.2f} | {np.concatenate(q).std(ddof=1):.2f} | "
                      f"{means.std(ddof=1):.2f} | {np.sqrt(within):.2f} | {t['between_over_within']:.2f} |")
    diff = np.array([x["model"]["effect_size"] - x["control"]["effect_size"] for x in draws])
    table["difference"] = {"mean": diff.mean(), "se": diff.std(ddof=1) / np.sqrt(n), "positive": int((diff > 0).sum())}
    seeds = sorted(x["seed"] for x in draws)
    text = "\n".join([
        f"{n} draws (seeds {seeds[0]}–{seeds[-1]}), {n_quads} counterfactual quads a draw "
        f"({4 * n_quads} scenes a model a draw), {np.mean([x['seconds'] for x in draws]):.0f} s a draw",
        "", "One draw:", "",
        "| model | draws | mean d (s.e.) | SD of d | p < 0.05, quads test | p < 0.05, iEAT's targets-only p |",
        "|---|---|---|---|---|---|", *rows, "",
        f"difference in d, figures-p90 − figures-p50 on the same draw: {diff.mean():+.3f} (s.e. "
        f"{diff.std(ddof=1) / np.sqrt(n):.3f}), positive in {(diff > 0).sum()} of {n} draws", "",
        "Runs of several draws, combined p (Stouffer) < 0.05: disjoint runs in seed order (share over every "
        "set of that many of the draws):", "",
        "| model | " + " | ".join(f"{k} draws" for k in RUNS if k <= n) + " |",
        "|---|" + "---|" * len([k for k in RUNS if k <= n]), *runs, "",
        "q = (XB − XA) − (YB − YA) in bits: its mean and SD over all quads, the SD of the draws' mean q, "
        "one draw's standard error of the mean, and their ratio squared (1 where the draws differ only by chance):", "",
        "| model | mean q | SD of q | SD of draw means | one draw's s.e. | ratio² |", "|---|---|---|---|---|---|", *spread,
        "", "Predicted detection by one draw at other numbers of quads (cost ∝ quads), from q's mean and SD here:", "",
        "| model | " + " | ".join(f"{k} quads" for k in SIZES) + " |", "|---|" + "---|" * len(SIZES), *predicted])
    (out / "summary.txt").write_text(text + "\n")
    study = json.dumps({"seeds": seeds, "n_quads": n_quads, "names": who, "table": table}, indent=1)
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

    def row(d: dict) -> bias.BiasRow:  # a stored row, without the bits and test parts kept beside it
        return bias.BiasRow(**{k: v for k, v in d.items() if k in names})

    draws = []
    for x in (json.loads(p.read_text()) for p in sorted(out.glob("draw-*.json"))):
        draws.append(bias.Draw(seed=x["seed"], **{w: row(x[w]) for w in ("model", "baseline", "control", "paired")}))
    result = bias.DrawsResult(model=WHO["model"], control=WHO["control"], draws=draws,
                              n_quads=x["n_quads"])
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
    p.add_argument("--quads", type=int, default=bias.DESIGN["quads"])
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
    run(args.seeds, args.out, args.quads)


if __name__ == "__main__":
    main()
