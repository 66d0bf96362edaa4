"""Part of :mod:`hwnas.search` (see there)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping


if TYPE_CHECKING:  # pragma: no cover
    import optuna


from hwnas.search._study import best_candidates, is_feasible


# --------------------------------------------------------------------------- plots

_LOG_UNITS = ("_ms", "_mj", "_kib", "macs", "params")  # costs that span decades across a space


def axis_scale(name: str, values) -> str:
    """``"log"`` for a cost axis (latency, energy, memory, MACs) whose positive values span
    more than 10x (a budget's feasible region is otherwise squeezed into a sliver), else ``"linear"``."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite or min(finite) <= 0 or not name.rstrip().lower().endswith(_LOG_UNITS):
        return "linear"
    return "log" if max(finite) > 10 * min(finite) else "linear"


def plot_search(study: "optuna.Study", out_dir: str | os.PathLike, budgets: Mapping[str, float] | None = None,
                ) -> dict[str, str]:
    """Writes ``history.png`` and ``pareto.png`` for a study; returns their paths.

    ``history.png``: every objective per trial (feasible, over budget) with the best so
    far. ``pareto.png``: the first two objectives (or, single-objective, the objective
    against the first budgeted metric) with the feasible Pareto front and the budget.
    """
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in (("history", history_figure(study)), ("pareto", pareto_figure(study, budgets))):
        paths[name] = str(out / f"{name}.png")
        fig.savefig(paths[name], dpi=110)
        plt.close(fig)
    return paths


def _trials(study: "optuna.Study"):
    import optuna

    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = [t for t in done if is_feasible(t)]
    over = [t for t in trials if t.user_attrs.get("feasible") is False]
    return names, trials, done, feasible, over


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def history_figure(study: "optuna.Study"):
    """Every objective per trial (within budget, over budget) with the best so far: a Figure."""
    import optuna

    plt = _pyplot()
    names, trials, done, feasible, over = _trials(study)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False)
    for i, (name, direction) in enumerate(zip(names, study.directions)):
        ax = axes[i][0]
        ax.scatter([t.number for t in feasible], [t.values[i] for t in feasible], s=14, label="within budget")
        inf_done = [t for t in done if not is_feasible(t)]
        if inf_done:
            ax.scatter([t.number for t in inf_done], [t.values[i] for t in inf_done], s=14, marker="x",
                       color="tab:red", label="over budget (not trained)")
        if feasible:
            best, xs, ys = None, [], []
            for t in sorted(feasible, key=lambda t: t.number):
                v = t.values[i]
                if best is None or (v > best if direction == optuna.study.StudyDirection.MAXIMIZE else v < best):
                    best = v
                xs.append(t.number)
                ys.append(best)
            ax.step(xs, ys, where="post", color="black", lw=1, label="best so far")
        ax.set_ylabel(name)
        ax.set_yscale(axis_scale(name, [t.values[i] for t in done]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[-1][0].set_xlabel(f"trial ({len(over)} of {len(trials)} over budget)")
    fig.suptitle(f"{study.study_name}: history")
    fig.tight_layout()
    return fig


def pareto_figure(study: "optuna.Study", budgets: Mapping[str, float] | None = None):
    """The first two objectives (or, single-objective, the objective against the first
    budgeted metric) with the feasible front and the budget line: a Figure."""
    import optuna

    plt = _pyplot()
    names, trials, done, feasible, over = _trials(study)
    budgets = dict(budgets or {})
    untrained = [t for t in done if not is_feasible(t)
                 and str(t.user_attrs.get("status", "")).startswith("infeasible")]  # sentinel values
    plotted_inf = [t for t in done if not is_feasible(t) and t not in untrained]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if len(names) >= 2:
        xname, yname = names[0], names[1]
        x_of = lambda t: t.values[0]  # noqa: E731
        y_of = lambda t: t.values[1]  # noqa: E731
        front = best_candidates(study, limit=None)
        front_label = "Pareto front (feasible)"
    else:
        metric = next(iter(budgets), None) or next(
            (k[len("predicted_"):] for k in (trials[0].user_attrs if trials else {})
             if k.startswith("predicted_") and not k.endswith("_std")), None)
        xname, yname = f"predicted {metric}", names[0]
        x_of = lambda t: t.user_attrs.get(f"predicted_{metric}", float("nan"))  # noqa: E731
        y_of = lambda t: t.values[0]  # noqa: E731
        # the trade-off: the best value at each predicted cost
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        front, best = [], -math.inf
        for t in sorted(feasible, key=lambda t: (x_of(t), -sign * y_of(t))):
            if sign * y_of(t) > best:
                front.append(t)
                best = sign * y_of(t)
        front_label = f"best {yname} at a predicted {metric}"
        rug = [x_of(t) for t in over if t.state == optuna.trial.TrialState.PRUNED]
        if rug:
            ax.plot(rug, [0.02] * len(rug), "|", color="tab:red", ms=12, transform=ax.get_xaxis_transform(),
                    label="over budget (pruned, not trained)")
    ax.scatter([x_of(t) for t in feasible], [y_of(t) for t in feasible], s=16, alpha=0.6, label="within budget")
    if plotted_inf:
        ax.scatter([x_of(t) for t in plotted_inf], [y_of(t) for t in plotted_inf], s=16, marker="x",
                   color="tab:red", alpha=0.6, label="over budget")
    if front:
        pts = sorted((x_of(t), y_of(t)) for t in front)
        ax.step([p[0] for p in pts], [p[1] for p in pts], "o-", where="post", color="black", ms=4, lw=1,
                label=front_label)
    for metric, limit in budgets.items():
        if xname.endswith(metric):
            ax.axvline(limit, color="tab:red", ls="--", lw=1, label=f"budget {limit:g}")
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    shown = feasible + plotted_inf
    ax.set_xscale(axis_scale(xname, [x_of(t) for t in shown] + list(budgets.values())))
    ax.set_yscale(axis_scale(yname, [y_of(t) for t in shown]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    hidden = f", {len(untrained)} over budget not shown" if untrained else ""
    ax.set_title(f"{study.study_name}: {len(feasible)} feasible of {len(trials)}{hidden}", fontsize=9)
    fig.tight_layout()
    return fig

