"""Part of :mod:`hwnas.search` (see there)."""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from search_spaces.errors import HwnasError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    import optuna


from hwnas.search._common import (
    ACCURACY_NEEDED, SAMPLERS, STUDY_ATTR, Budget, CandidateError, NoFeasibleCandidateError, SearchError,
)
from hwnas.search._objective import HardwareObjective


# --------------------------------------------------------------------------- studies


def open_storage(storage: Any) -> Any:
    """A storage from a URL or path; ``None`` is in-memory.

    * an RDB URL: ``sqlite:///study.db``, ``postgresql://user:pass@host/db``, ``mysql://...``,
      with a heartbeat (:func:`heartbeat_seconds`): a trial whose worker died is failed
      by the next worker after two beats and its arch retried (at most twice);
    * a journal file (several processes on one host): ``journal:PATH`` or a path ending
      in ``.log`` or ``.journal``;
    * an Optuna storage object, returned as is.

    Raises:
        SearchError: the storage cannot be opened (one line, password hidden).
    """
    import optuna

    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    text = str(storage)
    shown = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", text)
    try:
        if text.startswith("journal:") or (("://" not in text) and text.endswith((".log", ".journal"))):
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

            path = text[len("journal:"):] if text.startswith("journal:") else text
            if path.startswith("//"):
                path = path[2:]
            if not path:
                raise SearchError("journal storage needs a file: journal:PATH")
            parent = Path(path).resolve().parent
            if not parent.is_dir():
                raise SearchError(f"cannot open storage {shown}: folder {parent} does not exist")
            return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        if "://" not in text:
            raise SearchError(f"cannot open storage {shown!r}: give an RDB URL (sqlite:///FILE.db, "
                              "postgresql://USER@HOST/DB) or a journal file (journal:FILE)")
        if text.startswith("sqlite:///"):
            parent = Path(text[len("sqlite:///"):]).resolve().parent
            if not parent.is_dir():
                raise SearchError(f"cannot open storage {shown}: folder {parent} does not exist")
        # a worker killed mid-trial stops beating: after the grace period the next worker to
        # start fails its trial and enqueues the arch again (Optuna's own machinery)
        beat = heartbeat_seconds()
        with warnings.catch_warnings():  # Optuna marks the heartbeat experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                _driver_url(text), engine_kwargs=_engine_kwargs(text), heartbeat_interval=beat,
                grace_period=2 * beat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    except SearchError:
        raise
    except Exception as exc:  # SQLAlchemy, drivers, OS errors: one line for the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", reason)
        if isinstance(exc, ImportError) and text.startswith("postgresql"):
            reason = "the PostgreSQL driver is missing: pip install psycopg2-binary (or hwnas[postgresql])"
        raise SearchError(f"cannot open storage {shown}: {type(exc).__name__}: {reason}") from None


def heartbeat_seconds() -> int:
    """How often a worker's running trial beats on an RDB storage (``HWNAS_HEARTBEAT_S``, 60)."""
    try:
        return max(1, int(os.environ.get("HWNAS_HEARTBEAT_S", "60")))
    except ValueError:
        return 60


def _driver_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg 3;
    hwnas[postgresql] installs psycopg2-binary."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # several processes on one SQLite file wait for the lock instead of failing at once
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def make_sampler(name: str, seed: int | None = None, population_size: int | None = None,
                 n_trials: int | None = None) -> "optuna.samplers.BaseSampler":
    """``tpe``, ``nsga2``, ``gp`` or ``random`` as an Optuna sampler.

    NSGA-II's population defaults to ``min(50, max(8, n_trials // 5))``: about five
    generations in the trial budget.
    """
    import optuna

    if name not in SAMPLERS:
        raise unknown_name("sampler", name, SAMPLERS)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        if population_size is None:
            population_size = min(50, max(8, (n_trials or 250) // 5))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_study(
    objective: HardwareObjective,
    storage: Any = None,
    study_name: str | None = None,
    sampler: "str | optuna.samplers.BaseSampler" = "tpe",
    *,
    seed: int | None = None,
    population_size: int | None = None,
    n_trials: int | None = None,
    load_if_exists: bool = True,
) -> "optuna.Study":
    """A study with the objective's directions, created or joined (several workers, one study).

    The study records the objective's set-up (``user_attrs["hwnas"]``: space, target,
    objectives, budgets); joining with another set-up is refused.

    Args:
        storage: see :func:`open_storage` (None: in memory).
        sampler: a name (``tpe``, ``nsga2``, ``gp``, ``random``) or a sampler.

    Raises:
        SearchError: the storage cannot be opened, or holds a study of that name set up otherwise.
        UnknownNameError: an unknown sampler.
    """
    import optuna

    if isinstance(sampler, str):
        sampler = make_sampler(sampler, seed=seed, population_size=population_size, n_trials=n_trials)
    storage = open_storage(storage)
    name = study_name or f"hwnas-{objective.space.name}-{objective.target}"
    try:
        study = optuna.create_study(
            storage=storage, sampler=sampler, study_name=name, directions=objective.directions,
            load_if_exists=load_if_exists,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise SearchError(f"study {name!r} already exists in the storage") from None
    except ValueError as exc:  # directions differ from the stored study's
        raise SearchError(f"study {name!r}: {exc}") from None
    except Exception as exc:
        if isinstance(exc, HwnasError):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SearchError(f"cannot create study {name!r}: {type(exc).__name__}: {reason}") from None
    wanted = objective.describe()
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_ATTR, wanted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective.objective_names)
    elif stored != wanted:
        differs = [k for k in wanted if stored.get(k) != wanted[k]]
        raise SearchError(
            f"study {name!r} was set up with other {', '.join(differs)} "
            f"({', '.join(f'{k}={stored.get(k)!r}' for k in differs)}); choose another --study-name"
        )
    return study


def is_feasible(trial: "optuna.trial.FrozenTrial") -> bool:
    """A COMPLETE trial whose every constraint is <= 0."""
    import optuna

    return trial.state == optuna.trial.TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def best_candidates(study: "optuna.Study", limit: int | None = 10) -> list["optuna.trial.FrozenTrial"]:
    """The best feasible trials: the Pareto front (multi-objective) or the top ``limit``.

    Multi-objective fronts are sorted by the first objective, best first; repeated
    archs (same ``arch_id``) appear once.
    """
    import optuna

    directions = study.directions
    sign = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in directions]
    if len(directions) > 1:
        trials = study.best_trials  # Optuna's front: feasible trials only once any has constraints
    else:
        trials = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                  if is_feasible(t)]
    trials.sort(key=lambda t: (sign[0] * t.values[0], t.number))
    seen: set[str] = set()
    out = []
    for t in trials:
        key = t.user_attrs.get("arch_id", str(t.number))
        if key in seen:
            continue
        seen.add(key)
        out.append(t)
    return out if limit is None or len(directions) > 1 else out[:limit]


def trial_record(trial: "optuna.trial.FrozenTrial", names: Sequence[str] | None = None) -> dict[str, Any]:
    """A JSON-safe record of a trial: number, values by objective, arch, predicted metrics, artifact."""
    names = list(names or [f"objective_{i}" for i in range(len(trial.values or []))])
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "state": trial.state.name,
        "values": dict(zip(names, trial.values or [])),
        "feasible": is_feasible(trial),
        "constraints": dict(trial.constraints),
        "arch_id": attrs.get("arch_id"),
        "arch": attrs.get("arch"),
        "predicted": {k[len("predicted_"):]: v for k, v in attrs.items() if k.startswith("predicted_")},
        "macs": attrs.get("macs"),
        "tflite_artifact_id": attrs.get("tflite_artifact_id"),
    }


def _check_trials(n_trials: Any) -> None:
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise SearchError(f"the number of trials must be a positive integer, got {n_trials!r}")


def check_setup(*, sampler: str | None = None, n_trials: Any = None, budgets: Mapping[str, Any] | None = None,
                objectives: Sequence[str] | None = None, has_accuracy: bool = False) -> None:
    """Check a search's set-up before anything heavy loads, with the messages the library
    itself raises later (the command line calls this first, so a typo costs no import).

    Raises:
        SearchError, UnknownNameError: the first problem found.
    """
    if sampler is not None and sampler not in SAMPLERS:
        raise unknown_name("sampler", sampler, SAMPLERS)
    if n_trials is not None:
        _check_trials(n_trials)
    for metric, limit in (budgets or {}).items():
        Budget(metric, limit)
    if objectives and "accuracy" in objectives and not has_accuracy:
        raise SearchError(ACCURACY_NEEDED)


def run_search(
    objective: "HardwareObjective | optuna.Study",
    n_trials: "int | HardwareObjective",
    *args: Any,
    study: "optuna.Study | None" = None,
    give_up_after: int | None = 20,
    timeout: float | None = None,
    callbacks: Sequence[Callable] = (),
    show_progress_bar: bool = False,
) -> "optuna.Study":
    """``study.optimize`` with the objective, stopping when no budget can be met.

    ``run_search(objective, 100)`` searches a new in-memory study
    (``make_study(objective)``); ``run_search(objective, 100, study=study)`` searches the
    one given (a storage, several workers). The older ``run_search(study, objective,
    n_trials)`` still works. A candidate that cannot be exported or predicted fails its
    trial; the search goes on.

    Args:
        n_trials: trials this call runs (several workers on one study each run theirs).
        give_up_after: when this many trials of this call were over budget and the study
            has no feasible candidate, stop with :class:`NoFeasibleCandidateError` naming the
            smallest predicted value seen. None never gives up.

    Returns:
        The study.

    Raises:
        NoFeasibleCandidateError: see ``give_up_after``.
    """
    import optuna

    if isinstance(objective, optuna.Study):  # the older (study, objective, n_trials)
        if study is not None or len(args) != 1:
            raise SearchError("run_search(study, objective, n_trials): pass exactly these three, or "
                              "run_search(objective, n_trials, study=study)")
        study, objective, n_trials = objective, n_trials, args[0]
    elif args:
        raise SearchError("run_search(objective, n_trials, study=None, ...): too many positional arguments")
    _check_trials(n_trials)
    if study is None:
        study = make_study(objective)
    give_up = GiveUp(objective, give_up_after)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[give_up, *callbacks],
                   catch=(CandidateError,), show_progress_bar=show_progress_bar)
    give_up.raise_if_given_up()
    return study


class GiveUp:
    """A ``study.optimize`` callback: stops the study when ``after`` trials (of this process)
    were over budget and the study has no feasible candidate yet.

    ``study.optimize(objective, callbacks=[give_up := GiveUp(objective)])``, then
    ``give_up.raise_if_given_up()`` for the message naming the smallest prediction seen.
    """

    def __init__(self, objective: HardwareObjective, after: int | None = 20):
        self.objective, self.after = objective, after
        self.infeasible, self.feasible, self.gave_up = 0, False, False

    def __call__(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        if not self.objective.budgets or self.feasible or self.after is None:
            return
        if trial.user_attrs.get("feasible") is True:
            self.feasible = True
            return
        if trial.user_attrs.get("feasible") is False:
            self.infeasible += 1
        if self.infeasible >= self.after:
            if any(is_feasible(t) for t in study.get_trials(deepcopy=False)):
                self.feasible = True  # another worker found one
                return
            self.gave_up = True
            study.stop()

    def raise_if_given_up(self) -> None:
        """Raises :class:`NoFeasibleCandidateError` if the callback stopped the study."""
        if not self.gave_up:
            return
        objective = self.objective
        parts = []
        for b in objective.budgets:
            if b.metric in objective.smallest:
                value, arch_id = objective.smallest[b.metric]
                parts.append(f"{b.metric} <= {b.limit:g}: smallest predicted {value:.4g} ({arch_id})")
        margin = f" with a margin of {objective.margin_std:g} std" if objective.margin_std else ""
        raise NoFeasibleCandidateError(
            f"no candidate met the budget{margin} in {self.infeasible} trials ({'; '.join(parts)}); "
            "raise the budget or search a smaller space"
        )


def verify_best(study: "optuna.Study", objective: HardwareObjective, top: int = 5) -> list[dict[str, Any]]:
    """Exports and measures the best feasible candidates on the target (verification's last step).

    Returns, best first, ``{"trial", "arch_id", "measured": {...}, "predicted": {...},
    "within_budget": bool}``; the same records go to the study's user attribute
    ``hwnas_verified`` (a finished trial cannot be changed).  Candidates measured during
    the search are not measured again.
    """
    if objective.measure is None:
        raise SearchError(f"no measure function for {objective.target!r}: give HardwareObjective(measure=...)")
    records = []
    for trial in best_candidates(study, limit=top):
        arch = objective.space.decode(trial.user_attrs["arch"])
        measured = {m[len("measured_"):]: v for m, v in trial.user_attrs.items() if m.startswith("measured_")}
        if not measured:
            raw = objective.measure(objective.export(arch))
            objective.measurements += 1
            measured = {m: float(raw[m]) for m in objective.metrics if m in raw}
        within = all(measured.get(b.metric, math.inf) <= b.limit for b in objective.budgets)
        records.append({"trial": trial.number, "arch_id": trial.user_attrs.get("arch_id"), "measured": measured,
                        "predicted": {m: trial.user_attrs.get(f"predicted_{m}") for m in objective.metrics},
                        "within_budget": within})
    study.set_user_attr("hwnas_verified", records)
    return records


