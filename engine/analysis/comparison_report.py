"""Tables, figures and ``report.md`` of a comparison (:func:`engine.analysis.compare.compare`).

Tidy tables (one observation per row): ``graphs`` (per graph), ``steps`` (per cell, step and
measure), ``summary`` (per algorithm, run, family and size, with bootstrap intervals over
training seeds and graphs), ``parameters`` (per checkpoint) and ``question`` (per algorithm and
run: effective, faithful, and whether faithfulness at the smallest size predicts accuracy at
the largest). Figures by matplotlib, PNG and SVG.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .._files import atomic_write, write_csv
from ..algorithms import ALGORITHMS
from .behaviour import compounding
from .statistics import bootstrap_ci

EFFECTIVE = 0.95  # output accuracy at 64 nodes that counts as "effective" in the claims table
FAITHFUL = 0.9    # median probe R^2 and standardised CKA that count as "faithful"


def _median(values) -> float:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.median(v)) if v else float("nan")


def _mean(values) -> float:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _channel_fit(row: dict) -> float:
    """Median probe R^2 over C's named channels and steps of one cell (NaN steps, where a
    channel is constant, left out)."""
    return _median([x for name, vals in row["probe_r2"].items() if name.startswith("channel:") for x in vals])


def tables(rows: list, params: list, info: list) -> dict:
    group_of = {c["label"]: c["group"] for c in info}
    setup_of = {c["group"]: c.get("setup") for c in info}
    ok = [r for r in rows if r.get("status") == "ok"]
    graphs, steps = [], []
    for r in ok:
        base = {"algorithm": r["algorithm"], "group": group_of[r["model"]], "model": r["model"],
                "family": r["family"], "n": r["n"], "seed": r["seed"]}
        for i in range(len(r["output_accuracy"])):
            graphs.append({**base, "graph": i, "edges": r["edges"][i], "steps": r["steps"][i],
                           "output_accuracy": r["output_accuracy"][i], "exact_match": r["exact_match"][i],
                           "first_divergence_step": r["first_divergence_step"][i]})
        for name, vals in r["hint_accuracy"].items():
            steps += [{**base, "step": t + 1, "measure": f"hint_accuracy:{name}", "value": v} for t, v in enumerate(vals)]
        for measure in ("cka", "cka_standardised"):
            steps += [{**base, "step": t, "measure": measure, "value": v} for t, v in zip(r["probe_steps"], r[measure])]
        for key, vals in (r.get("attention") or {}).items():
            steps += [{**base, "step": t + 1, "measure": f"attention_{key}", "value": v} for t, v in enumerate(vals)]
        for kind in ("probe_r2", "probe_accuracy"):
            for name, vals in r[kind].items():
                steps += [{**base, "step": t, "measure": f"{kind}:{name}", "value": v}
                          for t, v in zip(r["probe_steps"], vals)]
    summary = _summary(ok, group_of)
    parameters = [{"algorithm": p["algorithm"], "group": group_of[p["model"]], "model": p["model"],
                   **{k: p[k] for k in ("compiled_point_loss", "compiled_point_grad_norm", "distance",
                                        "distance_over_learned_norm", "distance_over_compiled_norm", "barrier")},
                   **{f"matched_cosine:{k}": v for k, v in p["matched_cosine"].items()}}
                  for p in params if p.get("status") == "ok"]
    return {"graphs": graphs, "steps": steps, "summary": summary, "parameters": parameters,
            "question": _question(ok, summary, parameters, group_of, setup_of)}


def _summary(ok: list, group_of: dict) -> list:
    keys = sorted({(r["algorithm"], group_of[r["model"]], r["family"], r["n"]) for r in ok},
                  key=lambda k: (k[0], k[1], k[2], k[3]))
    out = []
    for algo, group, family, n in keys:
        cells = [r for r in ok if (r["algorithm"], group_of[r["model"]], r["family"], r["n"]) == (algo, group, family, n)]
        models = sorted({r["model"] for r in cells})
        acc = [np.concatenate([r["output_accuracy"] for r in cells if r["model"] == m]) for m in models]
        exact = [np.concatenate([np.asarray(r["exact_match"], dtype=float) for r in cells if r["model"] == m])
                 for m in models]
        first = np.concatenate([r["first_divergence_step"] for r in cells])
        lo, hi = bootstrap_ci(acc)
        elo, ehi = bootstrap_ci(exact)
        nodes = {m: sum(len(r["output_accuracy"]) * r["n"] for r in cells if r["model"] == m) for m in models}
        clrs = [sum(r["clrs_score"] * len(r["output_accuracy"]) * r["n"] for r in cells if r["model"] == m) / nodes[m]
                for m in models]
        rules = sorted({rule for r in cells for rule in r["baselines"]})
        rule_acc = {rule: float(np.mean([r["baselines"][rule] for r in cells])) for rule in rules}
        best_rule = max(rule_acc, key=rule_acc.get) if rule_acc else None
        row = {"algorithm": algo, "group": group, "family": family, "n": n, "checkpoints": len(models),
               "graphs": int(sum(len(a) for a in acc)),
               "output_accuracy": float(np.mean(np.concatenate(acc))), "output_accuracy_low": lo,
               "output_accuracy_high": hi,
               "output_accuracy_per_checkpoint": [round(float(np.mean(a)), 5) for a in acc],
               "clrs_score": float(np.mean(clrs)),
               "best_trivial_rule": best_rule, "best_trivial_accuracy": rule_acc.get(best_rule),
               **{f"baseline:{rule}": v for rule, v in rule_acc.items()},
               "exact_match": float(np.mean(np.concatenate(exact))), "exact_match_low": elo, "exact_match_high": ehi,
               "trace_exact": float(np.mean(first == -1)),
               "first_divergence_median": float(np.median(first[first >= 0])) if (first >= 0).any() else None,
               "compiled_exact": all(r["compiled_exact"] for r in cells)}
        for probe in ALGORITHMS[algo].hints:
            vals = [v for r in cells for v in r["hint_accuracy"].get(probe.name, [])]
            if vals:
                row[f"hint_accuracy:{probe.name}"] = float(np.mean(vals))
                totals = {k: sum(r["compounding"][probe.name][k] for r in cells)
                          for k in ("pairs", "right_before", "right_after", "right_both")}
                for k, v in compounding(totals).items():
                    row[f"{k}:{probe.name}"] = v
        per_model = {m: [r for r in cells if r["model"] == m] for m in models}
        cka = [_mean([x for r in rs for x in r["cka"]]) for rs in per_model.values()]
        cka_s = [_mean([x for r in rs for x in r["cka_standardised"]]) for rs in per_model.values()]
        fit = [_median([_channel_fit(r) for r in rs]) for rs in per_model.values()]
        row.update({"cka": _mean(cka), "cka_min": float(np.nanmin(cka)) if cka else None,
                    "cka_max": float(np.nanmax(cka)) if cka else None,
                    "cka_standardised": _mean(cka_s), "probe_channel_r2": _median(fit),
                    "probe_channel_r2_per_checkpoint": [round(x, 4) for x in fit]})
        for key in ("mass", "top1", "js"):
            vals = [x for r in cells for x in (r.get("attention") or {}).get(key, []) if x is not None]
            if vals:
                row[f"attention_{key}"] = float(np.mean(vals))
        targets = sorted({name for r in cells for name in r["probe_r2"]})
        for name in targets:
            row[f"probe_r2:{name}"] = _median([x for r in cells for x in r["probe_r2"][name]])
        for name in sorted({name for r in cells for name in r["probe_accuracy"]}):
            row[f"probe_accuracy:{name}"] = _mean([x for r in cells for x in r["probe_accuracy"][name]])
        out.append(row)
    return out


def _question(ok: list, summary: list, parameters: list, group_of: dict, setup_of: dict | None = None) -> list:
    """Per algorithm and run: accuracy at 64 and at the largest ER size, faithfulness at the
    smallest size, the parameter distance, and the rank correlation over checkpoints between
    faithfulness at the smallest size and accuracy at the largest; with the run's training
    setup and its median trace length at 64 nodes (for setting a control beside its base)."""
    from scipy.stats import spearmanr

    out = []
    for algo, group in sorted({(s["algorithm"], s["group"]) for s in summary}):
        er = {s["n"]: s for s in summary if (s["algorithm"], s["group"], s["family"]) == (algo, group, "er")}
        if not er:
            continue
        small, large = min(er), max(er)
        at64 = er.get(64)
        params = [p for p in parameters if (p["algorithm"], p["group"]) == (algo, group)]
        per_ckpt = []
        for m in sorted({r["model"] for r in ok if r["algorithm"] == algo and group_of[r["model"]] == group}):
            cs = [r for r in ok if r["model"] == m and r["family"] == "er"]
            fit = _median([_channel_fit(r) for r in cs if r["n"] == small])
            acc = _mean([a for r in cs if r["n"] == large for a in r["output_accuracy"]])
            per_ckpt.append((m, fit, acc))
        steps64 = [t for r in ok if r["algorithm"] == algo and group_of[r["model"]] == group
                   and r["family"] == "er" and r["n"] == 64 for t in r["steps"]]
        rho = None
        if len(per_ckpt) >= 3:
            r = spearmanr([p[1] for p in per_ckpt], [p[2] for p in per_ckpt])
            rho = None if not np.isfinite(r.statistic) else float(r.statistic)
        out.append({
            "algorithm": algo, "group": group, "checkpoints": len(per_ckpt),
            "setup": (setup_of or {}).get(group),
            "median_steps_64": float(np.median(steps64)) if steps64 else None,
            "accuracy_64": at64["output_accuracy"] if at64 else None,
            "accuracy_64_low": at64["output_accuracy_low"] if at64 else None,
            "accuracy_64_high": at64["output_accuracy_high"] if at64 else None,
            "largest_n": large, "accuracy_largest": er[large]["output_accuracy"],
            "accuracy_largest_low": er[large]["output_accuracy_low"],
            "accuracy_largest_high": er[large]["output_accuracy_high"],
            "exact_match_largest": er[large]["exact_match"],
            "smallest_n": small, "probe_channel_r2_smallest": er[small]["probe_channel_r2"],
            "cka_standardised_smallest": er[small]["cka_standardised"],
            "trace_exact_smallest": er[small]["trace_exact"],
            "probe_channel_r2_largest": er[large]["probe_channel_r2"],
            "attention_top1_smallest": er[small].get("attention_top1"),
            "attention_mass_smallest": er[small].get("attention_mass"),
            "cka_standardised_largest": er[large]["cka_standardised"],
            "compiled_exact_everywhere": all(s["compiled_exact"] for s in summary
                                             if (s["algorithm"], s["group"]) == (algo, group)),
            "distance_over_compiled_norm": _mean([p["distance_over_compiled_norm"] for p in params]) if params else None,
            "barrier": _mean([p["barrier"] for p in params]) if params else None,
            "spearman_fit_small_vs_accuracy_large": rho,
            "points_fit_small_accuracy_large": [[m, round(f, 4), round(a, 4)] for m, f, a in per_ckpt],
        })
    return out


def claims(question: list) -> list:
    """The seed paper's qualitative claims, each marked by our numbers for every run it
    concerns: ``supported``, ``not supported`` or ``not measured``, with the figures it rests
    on. Bellman-Ford is set against the BFS run of the same processor."""
    def effective(q):
        return q["accuracy_64"] is not None and q["accuracy_64"] >= EFFECTIVE

    def faithful(q):
        return q["probe_channel_r2_smallest"] >= FAITHFUL and q["cka_standardised_smallest"] >= FAITHFUL

    def attention(q):
        top1 = q.get("attention_top1_smallest")
        return "" if top1 is None else f"; attention top-1 agreement there {top1:.3f}"

    out = []
    bfs_runs = [q for q in question if q["algorithm"] == "bfs"]
    for q in bfs_runs:
        if q["accuracy_64"] is None:
            continue
        out.append({"claim": f"BFS is learned effectively but is internally unfaithful ({q['group']})",
                    "verdict": "supported" if effective(q) and not faithful(q) else "not supported",
                    "basis": (f"accuracy at 64: {q['accuracy_64']:.4f} (effective: >= {EFFECTIVE}); at "
                              f"{q['smallest_n']} nodes median probe R^2 {q['probe_channel_r2_smallest']:.3f}, "
                              f"standardised CKA {q['cka_standardised_smallest']:.3f} (faithful: both >= {FAITHFUL})"
                              + attention(q))})
    if not out:
        out.append({"claim": "BFS is learned effectively but is internally unfaithful", "verdict": "not measured",
                    "basis": "no BFS checkpoints compared at 64 nodes"})
    bf_runs = [q for q in question if q["algorithm"] == "bellman_ford" and q["accuracy_64"] is not None]
    compared = False
    for bf in bf_runs:
        processor = bf["group"].rsplit("-", 1)[-1]
        for bfs in (q for q in bfs_runs if q["accuracy_64"] is not None and q["group"].rsplit("-", 1)[-1] == processor):
            compared = True
            between = bf["accuracy_64"] <= bfs["accuracy_64"] and \
                bf["probe_channel_r2_smallest"] >= bfs["probe_channel_r2_smallest"]
            out.append({"claim": f"Bellman-Ford lies in between: less effective, more faithful than BFS "
                                 f"({bf['group']} against {bfs['group']})",
                        "verdict": "supported" if between else "not supported",
                        "basis": (f"accuracy at 64 {bf['accuracy_64']:.4f} vs {bfs['accuracy_64']:.4f}; probe R^2 at "
                                  f"{bf['smallest_n']} {bf['probe_channel_r2_smallest']:.3f} vs "
                                  f"{bfs['probe_channel_r2_smallest']:.3f}; standardised CKA "
                                  f"{bf['cka_standardised_smallest']:.3f} vs {bfs['cka_standardised_smallest']:.3f}")})
    if not compared:
        out.append({"claim": "Bellman-Ford lies in between (less effective, more faithful than BFS)",
                    "verdict": "not measured", "basis": "needs Bellman-Ford and BFS runs of one processor"})
    dfs = [q for q in question if q["algorithm"] == "dfs" and q["accuracy_64"] is not None]
    if dfs:
        # compilable: the compiled control exact on every graph; learned: effective at 64 nodes
        supported = all(q["compiled_exact_everywhere"] for q in dfs) and not any(effective(q) for q in dfs)
        out.append({"claim": "DFS is not learned, though it is compilable", "verdict":
                    "supported" if supported else "not supported",
                    "basis": "; ".join(f"{q['group']}: accuracy at 64 {q['accuracy_64']:.4f} (effective: >= "
                                       f"{EFFECTIVE}), at {q['largest_n']:,} {q['accuracy_largest']:.4f}; compiled "
                                       f"control {'exact on every graph' if q['compiled_exact_everywhere'] else 'NOT exact'}"
                                       for q in dfs)})
    else:
        out.append({"claim": "DFS is not learned, though it is compilable", "verdict": "not measured",
                    "basis": "no DFS checkpoint compared at 64 nodes"})
    return out


def controls(question: list) -> list:
    """Each control run (an algorithm whose registry entry names ``control_of``) beside every
    run of the algorithm it varies with the same training setup: its claim
    (``control_question``: the control costs accuracy) is ``supported`` when the control's 95%
    interval at 64 nodes lies wholly below the base's, ``not supported`` otherwise (the basis
    says whether the intervals overlap or the control scores higher), ``not measured`` without
    a base run of that setup or without cells at 64 nodes."""
    out = []
    for c in question:
        entry = ALGORITHMS[c["algorithm"]]
        if entry.control_of is None:
            continue
        def claim(base: str) -> str:
            return f"{entry.control_question} ({c['group']} against {base}, {c.get('setup')})"

        bases = [q for q in question if q["algorithm"] == entry.control_of and q.get("setup") == c.get("setup")]
        if not bases:
            out.append({"claim": claim(entry.control_of), "control": c["group"], "base": None,
                        "setup": c.get("setup"), "verdict": "not measured",
                        "basis": f"no {entry.control_of} run of setup {c.get('setup')!r} compared"})
            continue
        for b in bases:
            row = {"claim": claim(b["group"]), "control": c["group"], "base": b["group"], "setup": c.get("setup")}
            if c["accuracy_64"] is None or b["accuracy_64"] is None:
                out.append({**row, "verdict": "not measured", "basis": "no cells at 64 nodes for both runs"})
                continue
            below = c["accuracy_64_high"] < b["accuracy_64_low"]
            above = c["accuracy_64_low"] > b["accuracy_64_high"]
            how = "intervals disjoint, control below" if below else (
                "intervals disjoint, control above" if above else "intervals overlap")

            def at64(q):
                steps = "" if q.get("median_steps_64") is None else f", median trace {q['median_steps_64']:.0f} steps"
                return (f"{q['accuracy_64']:.4f} ({q['accuracy_64_low']:.4f}-{q['accuracy_64_high']:.4f}; "
                        f"{q['checkpoints']} seed{'s' if q['checkpoints'] != 1 else ''}{steps})")

            basis = (f"accuracy at 64: control {at64(c)} against {at64(b)}: {how}; at the largest sizes: control "
                     f"{c['accuracy_largest']:.4f} at {c['largest_n']:,}, base {b['accuracy_largest']:.4f} at "
                     f"{b['largest_n']:,}; compiled controls "
                     + ("exact on every graph" if c["compiled_exact_everywhere"] and b["compiled_exact_everywhere"]
                        else "NOT exact everywhere"))
            out.append({**row, "verdict": "supported" if below else "not supported", "basis": basis})
    return out


# ---------------------------------------------------------------- writing


def _write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    atomic_write(path, write)


def write_report(result: dict, out: str, settings: dict) -> list:
    """Write the tidy CSVs, ``results.json``, the figures and ``report.md`` to ``out``;
    returns the files written."""
    os.makedirs(out, exist_ok=True)
    t = result["tables"]
    written = []
    for name in ("graphs", "steps", "summary", "parameters", "question"):
        path = os.path.join(out, f"{name}.csv")
        write_csv(path, t[name])
        written.append(path)
    verdicts = claims(t["question"])
    control_rows = controls(t["question"])
    doc = {"settings": settings, "checkpoints": result["checkpoints"], "summary": t["summary"],
           "question": t["question"], "parameters": t["parameters"], "claims": verdicts,
           "controls": control_rows}
    path = os.path.join(out, "results.json")
    _write_text(path, json.dumps(doc, indent=1, default=float) + "\n")
    written.append(path)
    written += figures(t, out)
    path = os.path.join(out, "report.md")
    _write_text(path, markdown(result, settings, verdicts, control_rows))
    written.append(path)
    return written


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem: str) -> list:
    paths = []
    for ext in ("png", "svg"):
        path = f"{stem}.{ext}"
        atomic_write(path, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=150))
        paths.append(path)
    return paths


def _run_colours(plt, groups) -> dict:
    """One colour per run (its families share it and differ by line style): matplotlib's
    qualitative ``tab10``, or ``tab20`` for more than ten runs."""
    groups = sorted(set(groups))
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    return {g: cmap(i % cmap.N) for i, g in enumerate(groups)}


def figures(t: dict, out: str) -> list:
    """``accuracy``: output accuracy against n with bootstrap bands; ``internal``: standardised
    CKA and median probe R^2 against n; ``probes_ALGO``: per target; ``steps_ALGO``: per-step
    accuracy of the pointer hint at each size."""
    plt = _pyplot()
    summary = t["summary"]
    written = []
    series = sorted({(s["algorithm"], s["group"], s["family"]) for s in summary})
    colour = _run_colours(plt, [group for _, group, _ in series])
    fig, ax = plt.subplots(figsize=(9.0, 4.4))
    for algo, group, family in series:
        rows = sorted((s for s in summary if (s["algorithm"], s["group"], s["family"]) == (algo, group, family)),
                      key=lambda s: s["n"])
        n = [s["n"] for s in rows]
        ax.plot(n, [s["output_accuracy"] for s in rows], marker="o", linestyle="-" if family == "er" else "--",
                color=colour[group], label=f"{group} ({family})")
        ax.fill_between(n, [s["output_accuracy_low"] for s in rows], [s["output_accuracy_high"] for s in rows],
                        color=colour[group], alpha=0.2, linewidth=0)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":", label="compiled (exact on every graph)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("nodes (log scale)")
    ax.set_ylabel("output pointer accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, not over the lines
    fig.tight_layout()
    written += _save(fig, os.path.join(out, "accuracy"))
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    for algo, group, family in series:
        rows = sorted((s for s in summary if (s["algorithm"], s["group"], s["family"]) == (algo, group, family)),
                      key=lambda s: s["n"])
        n = [s["n"] for s in rows]
        style = "-" if family == "er" else "--"
        axes[0].plot(n, [s["cka_standardised"] for s in rows], marker="o", linestyle=style, color=colour[group],
                     label=f"{group} ({family})")
        axes[1].plot(n, [max(s["probe_channel_r2"], -1.0) for s in rows], marker="o", linestyle=style,
                     color=colour[group], label=f"{group} ({family})")
    for ax, label in zip(axes, ("linear CKA, standardised channels (mean over steps)",
                                "probe R^2, median over compiled channels and steps\n(values below -1 drawn at -1)")):
        ax.set_xscale("log")
        ax.set_xlabel("nodes (log scale)")
        ax.set_title(label, fontsize="medium")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylim(-0.05, 1.05)
    axes[1].set_ylim(-1.05, 1.05)
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    written += _save(fig, os.path.join(out, "internal"))
    plt.close(fig)

    for algo in sorted({s["algorithm"] for s in summary}):
        rows = sorted((s for s in summary if s["algorithm"] == algo and s["family"] == "er"), key=lambda s: s["n"])
        targets = sorted({k.split(":", 1)[1] for s in rows for k in s if k.startswith("probe_r2:")})
        groups = sorted({s["group"] for s in rows})
        fig, axes = plt.subplots(1, len(groups), figsize=(6.4 * len(groups), 4.0), squeeze=False)
        for ax, group in zip(axes[0], groups):
            g = [s for s in rows if s["group"] == group]
            for target in targets:
                vals = [s.get(f"probe_r2:{target}") for s in g]
                ax.plot([s["n"] for s in g], [None if v is None else max(v, -1.0) for v in vals], marker="o",
                        label=target)
            ax.set_xscale("log")
            ax.set_ylim(-1.05, 1.05)
            ax.set_xlabel("nodes (log scale)")
            ax.set_ylabel("probe R^2 (median over steps, ER)")
            ax.set_title(f"{group} (values below -1 drawn at -1)", fontsize="medium")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="x-small")
        fig.tight_layout()
        written += _save(fig, os.path.join(out, f"probes_{algo}"))
        plt.close(fig)

        pointer = [p.name for p in ALGORITHMS[algo].hints if p.kind == "pointer"]
        if pointer:
            measure = f"hint_accuracy:{pointer[0]}"
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            for n in sorted({r["n"] for r in t["steps"] if r["algorithm"] == algo and r["family"] == "er"}):
                pts = [r for r in t["steps"] if r["algorithm"] == algo and r["family"] == "er" and r["n"] == n
                       and r["measure"] == measure]
                steps = sorted({r["step"] for r in pts})
                ax.plot(steps, [np.mean([r["value"] for r in pts if r["step"] == s]) for s in steps], marker=".",
                        label=f"n={n:,}")
            ax.set_xlabel("step")
            ax.set_ylabel(f"{pointer[0]} accuracy (mean over checkpoints, graphs)")
            ax.set_ylim(0, 1.02)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="x-small")
            fig.tight_layout()
            written += _save(fig, os.path.join(out, f"steps_{algo}"))
            plt.close(fig)
    return written


def _f(x, digits=4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(result: dict, settings: dict, verdicts: list, control_rows: list = ()) -> str:
    t = result["tables"]
    lines = ["# Learned against compiled", "",
             "Written by `python -m engine.compare` (engine.analysis.compare). Every learned checkpoint runs "
             "beside a compiled model of its algorithm on the same graphs, from the same source, for the "
             "reference's number of steps: the one of its own spec (same weight names and shapes, analytic "
             "weights) where the algorithm compiles into that spec, else the compact construction (then it is the "
             "exact control and the probe and CKA target, and the parameters are not compared). Hints are fed back "
             "hard; a checkpoint trained on CLRS's ground-truth hint 0 is given the reference's hint 0, as in "
             "training.", "",
             "Compiled counterparts: " + "; ".join(sorted({
                 f"{c['group']}: `{c['compiled']}` ({'own spec' if c.get('shares_parameters', True) else 'compact'}"
                 f"{', hint 0 given' if c.get('hint0') == 'given' else ''})" for c in result["checkpoints"]})) + ".",
             "",
             f"Settings: sizes {settings['sizes']}, families {settings['families']} (caps {settings['max_size']}),"
             f" graph seeds {settings['seeds']}, mean degree {settings['degree']}, {settings['nodes_per_cell']} nodes "
             f"per cell at small sizes, probes fitted on {settings['probe_graphs']} CLRS training-distribution graphs "
             "(sizes 4-16) per checkpoint.", "",
             "Checkpoints: " + ", ".join(f"`{c['file']}`" for c in result["checkpoints"]) + ".", "",
             "## The question in one table", "",
             "| algorithm | run | seeds | accuracy at 64 (95% CI) | accuracy at largest n (95% CI) | exact match there "
             "| probe R^2 at smallest n | std. CKA at smallest n | probe R^2 at largest n | std. CKA at largest n "
             "| compiled exact | distance / compiled norm | barrier | Spearman (fit small, acc. large) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for q in t["question"]:
        lines.append(
            f"| {q['algorithm']} | {q['group']} | {q['checkpoints']} | {_f(q['accuracy_64'])} "
            f"({_f(q['accuracy_64_low'])}-{_f(q['accuracy_64_high'])}) | n={q['largest_n']:,}: {_f(q['accuracy_largest'])} "
            f"({_f(q['accuracy_largest_low'])}-{_f(q['accuracy_largest_high'])}) | {_f(q['exact_match_largest'], 3)} "
            f"| n={q['smallest_n']}: {_f(q['probe_channel_r2_smallest'], 3)} | {_f(q['cka_standardised_smallest'], 3)} "
            f"| {_f(q['probe_channel_r2_largest'], 3)} | {_f(q['cka_standardised_largest'], 3)} "
            f"| {'yes' if q['compiled_exact_everywhere'] else 'NO'} | {_f(q['distance_over_compiled_norm'], 3)} "
            f"| {_f(q['barrier'], 1)} | {_f(q['spearman_fit_small_vs_accuracy_large'], 2)} "
            f"(points: {q['points_fit_small_accuracy_large']}) |")
    lines += ["", "Accuracy: output pointer accuracy per graph, mean over graphs and training seeds; the interval is a "
              "two-level percentile bootstrap (seeds, then graphs within a seed; 2,000 resamples). Probe R^2: median "
              "over checkpoints of the median over the compiled model's named channels and steps 1..T-1 of a ridge read-out of the learned state "
              "(NaN steps, where a channel is constant, left out). CKA: linear CKA between the learned state and the "
              "compiled model's named channels, each channel standardised, mean over steps. With three seeds per run "
              "the rank correlation is shown with its points; it is not evidence on its own.", "",
              "## The paper's claims", "", "| claim | our numbers | basis |", "|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['claim']} | **{v['verdict']}** | {v['basis']} |")
    lines += ["", f"Criteria (stated before looking): effective = output accuracy at 64 nodes >= {EFFECTIVE}; "
              f"faithful = median probe R^2 and standardised CKA at the smallest size both >= {FAITHFUL}.", ""]
    if control_rows:
        lines += ["## Controls: trace length and hint richness", "",
                  "Each control (sequential BFS, `bfs_seq`: one hint per queue event; DFS with reduced hints, "
                  "`dfs_light`: `pi_h` and `color` only) beside the run of the algorithm it varies, trained the "
                  "same way. Supported: the control's 95% interval at 64 nodes lies wholly below the base's.", "",
                  "| claim | our numbers | basis |", "|---|---|---|"]
        lines += [f"| {v['claim']} | **{v['verdict']}** | {v['basis']} |" for v in control_rows]
        lines.append("")
    lines += [
              "## By size", "",
              "| algorithm | run | family | n | graphs | accuracy (95% CI) | best trivial rule | CLRS score | exact match | exact trace "
              "| median first divergent step | P(right \\| right) | P(right \\| wrong) | CKA raw / std. | probe R^2 "
              "| compiled exact |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in t["summary"]:
        pointer = [p.name for p in ALGORITHMS[s["algorithm"]].hints if p.kind == "pointer"][0]
        lines.append(
            f"| {s['algorithm']} | {s['group']} | {s['family']} | {s['n']:,} | {s['graphs']} | {_f(s['output_accuracy'])} "
            f"({_f(s['output_accuracy_low'])}-{_f(s['output_accuracy_high'])}) "
            f"| {_f(s['best_trivial_accuracy'])} ({s['best_trivial_rule']}) | {_f(s['clrs_score'])} "
            f"| {_f(s['exact_match'], 3)} | {_f(s['trace_exact'], 3)} | {_f(s['first_divergence_median'], 1)} "
            f"| {_f(s.get(f'p_right_given_right:{pointer}'), 3)} | {_f(s.get(f'p_right_given_wrong:{pointer}'), 3)} "
            f"| {_f(s['cka'], 3)} / {_f(s['cka_standardised'], 3)} | {_f(s['probe_channel_r2'], 3)} "
            f"| {'yes' if s['compiled_exact'] else 'NO'} |")
    from .behaviour import SCALAR_TOLERANCE

    lines += ["", f"Hint accuracy, mean over steps 1..T-1 (scalars right within {SCALAR_TOLERANCE[0]} + "
              f"{SCALAR_TOLERANCE[1]} x |reference|; a graph's trace is exact only if every hint is right at every "
              "step):", ""]
    for algo in sorted({s["algorithm"] for s in t["summary"]}):
        names = [p.name for p in ALGORITHMS[algo].hints]
        rows = [s for s in t["summary"] if s["algorithm"] == algo and any(f"hint_accuracy:{h}" in s for h in names)]
        names = [h for h in names if any(f"hint_accuracy:{h}" in s for s in rows)]
        lines += [f"| {algo}: run | family | n | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for s in rows:
            lines.append(f"| {s['group']} | {s['family']} | {s['n']:,} | "
                         + " | ".join(_f(s.get(f"hint_accuracy:{h}"), 3) for h in names) + " |")
        lines.append("")
    attn = [s for s in t["summary"] if "attention_top1" in s]
    if attn:
        lines += ["", "Attention (GATv2 against the compiled model's hard attention; nodes with more than one "
                  "candidate; mean over steps 1..T-1):", "",
                  "| algorithm | run | family | n | mass on the compiled sender | top-1 agreement | JS divergence (bits) |",
                  "|---|---|---|---|---|---|---|"]
        for s in attn:
            lines.append(f"| {s['algorithm']} | {s['group']} | {s['family']} | {s['n']:,} | {_f(s['attention_mass'], 3)} "
                         f"| {_f(s['attention_top1'], 3)} | {_f(s['attention_js'], 3)} |")
    lines += ["", "CLRS score: pointer accuracy pooled over all nodes of all graphs (CLRS averages over a batch's "
              "nodes); accuracy: mean of per-graph accuracies. Best trivial rule: the best of rules that run no "
              "algorithm (self pointer, lowest/highest-index candidate, highest-index in-neighbour below the node, "
              "expected uniform random candidate; engine.analysis.baselines) on the same graphs. Exact trace: share "
              "of graphs whose every hint at "
              "every step 1..T-1 equals the reference. Compounding (P columns) for the pointer hint: the chance a "
              "node's hint is right at step t+1 given it was right (wrong) at step t.", "",
              "## Probes, per compiled channel and hint (median R^2 over steps, ER)", ""]
    targets = sorted({k for s in t["summary"] for k in s if k.startswith("probe_r2:")})
    for algo in sorted({s["algorithm"] for s in t["summary"]}):
        rows = [s for s in t["summary"] if s["algorithm"] == algo and s["family"] == "er"]
        cols = [k for k in targets if any(k in s for s in rows)]
        lines += [f"{algo}:", "", "| run | n | " + " | ".join(c.split(":", 1)[1] for c in cols) + " |",
                  "|---|---|" + "---|" * len(cols)]
        for s in rows:
            lines.append(f"| {s['group']} | {s['n']:,} | " + " | ".join(_f(s.get(c), 3) for c in cols) + " |")
        lines.append("")
    if t["parameters"]:
        lines += ["## Parameters", "", "| checkpoint | compiled point loss | grad norm there | distance | / learned norm "
                  "| / compiled norm | barrier |", "|---|---|---|---|---|---|---|"]
        for p in t["parameters"]:
            lines.append(f"| {p['model']} | {p['compiled_point_loss']:.3g} | {p['compiled_point_grad_norm']:.3g} "
                         f"| {p['distance']:.4g} | {p['distance_over_learned_norm']:.3f} "
                         f"| {p['distance_over_compiled_norm']:.3g} | {p['barrier']:.4g} |")
        lines += ["", "Distance and barrier after balancing both points and aligning the learned units to the "
                  "compiled ones (engine.analysis.alignment; docs/compiled_in_learned.md says where they are "
                  "meaningful: not for Bellman-Ford, whose compiled norm is its 2^60/2^90 constants). MPNN checkpoints only: "
                  "the alignment handles one-layer MPNN specs.", ""]
    lines += ["## Figures", "", "![accuracy](accuracy.png)", "", "![internal](internal.png)", ""]
    for algo in sorted({s["algorithm"] for s in t["summary"]}):
        lines += [f"![probes {algo}](probes_{algo}.png)", ""]
        if any(p.kind == "pointer" for p in ALGORITHMS[algo].hints):
            lines += [f"![steps {algo}](steps_{algo}.png)", ""]
    lines += ["Tables: `summary.csv` (per size), `graphs.csv` (per graph), `steps.csv` (per step and measure), "
              "`parameters.csv`, `question.csv`; everything in `results.json`.", ""]
    return "\n".join(lines)
