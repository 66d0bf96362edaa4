"""The search-space interface, its registry (timm-style) and the arch choosers.

A space describes its choices once, in :meth:`SearchSpace._draw`, by asking a
*chooser* for every value.  Three choosers walk that same description:

* :class:`TrialChooser` asks an Optuna trial (define-by-run) -> :meth:`SearchSpace.suggest`;
* :class:`RngChooser` draws uniformly with a NumPy generator -> :meth:`SearchSpace.sample`;
* :class:`ValidatingChooser` reads the values of a given arch dict and checks each
  against its choices -> :meth:`SearchSpace.decode`.

So suggest, sample and validation cannot drift apart, and an error names the exact
field (``'expansion[3]' value 9 not in [3, 4, 6]``).

An *arch* is a plain JSON-safe dict: ``{"space": name, <choice>: value, ...}``.
:meth:`SearchSpace.encode` adds the space's options (the same arch on other
options is another network); :meth:`SearchSpace.arch_id` hashes that encoding.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import numbers
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, Sequence

from search_spaces.errors import HwnasError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np
    import optuna

Arch = dict  # {"space": name, <choice>: value, ...}; JSON-safe


class SearchSpaceError(HwnasError, ValueError):
    """A search space was given a value it cannot use."""


class InvalidArchError(SearchSpaceError):
    """An arch that does not belong to the space (missing key, value out of range, bad string)."""


class InvalidOptionError(SearchSpaceError):
    """An unknown or malformed search-space option (e.g. ``input_shape``)."""


# --------------------------------------------------------------------------- choosers


def _field(name: str, index: int | None) -> str:
    return name if index is None else f"{name}[{index}]"


def _same_value(raw: Any, choice: Any) -> bool:
    """Equality that keeps bools, numbers and strings apart (``True != 1`` here)."""
    if isinstance(choice, bool) or isinstance(raw, bool):
        return isinstance(choice, bool) and isinstance(raw, bool) and raw is choice
    if isinstance(choice, numbers.Number):
        return isinstance(raw, numbers.Number) and raw == choice
    return type(raw) is type(choice) and raw == choice


def _as_int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, numbers.Integral):
        return int(raw)
    if isinstance(raw, numbers.Real) and float(raw).is_integer():
        return int(raw)
    return None


def _listing(values: Iterable[Any]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


class Chooser(ABC):
    """Supplies the value of every choice while a space describes itself.

    Values are stored in :attr:`arch` under their field names; list fields are
    declared with :meth:`items` and filled by index.
    """

    def __init__(self) -> None:
        self.arch: dict[str, Any] = {}

    def items(self, name: str, count: int, per: str = "") -> range:
        """Declares list field ``name`` of ``count`` values; returns their indices."""
        self.arch[name] = [None] * count
        return range(count)

    def choice(self, name: str, choices: Sequence[Any], index: int | None = None) -> Any:
        """One of ``choices`` (JSON scalars: bool, int, float, str)."""
        if not choices:
            raise ValueError(f"no choices for {_field(name, index)}")
        value = self._choice(name, tuple(choices), index)
        self._store(name, index, value)
        return value

    def integer(self, name: str, low: int, high: int, index: int | None = None) -> int:
        """An integer in ``[low, high]`` (both included)."""
        value = int(self._integer(name, int(low), int(high), index))
        self._store(name, index, value)
        return value

    def skip(self, name: str, index: int, why: str) -> None:
        """Entry ``index`` of list field ``name`` has no choice here (it stays null)."""

    def finish(self) -> dict[str, Any]:
        return self.arch

    def _store(self, name: str, index: int | None, value: Any) -> None:
        if index is None:
            self.arch[name] = value
        else:
            self.arch[name][index] = value

    @abstractmethod
    def _choice(self, name: str, choices: tuple, index: int | None) -> Any: ...

    @abstractmethod
    def _integer(self, name: str, low: int, high: int, index: int | None) -> int: ...


class TrialChooser(Chooser):
    """Asks an Optuna trial; parameter names are ``<prefix><field>[_<index>]``.

    A choice with a single option is not suggested (Optuna would record a constant);
    the same parameter name always gets the same choices (Optuna's categorical
    distributions cannot change between trials).
    """

    def __init__(self, trial: "optuna.trial.BaseTrial", prefix: str):
        super().__init__()
        self.trial = trial
        self.prefix = prefix

    def param_name(self, name: str, index: int | None) -> str:
        return f"{self.prefix}{name}" if index is None else f"{self.prefix}{name}_{index}"

    def _choice(self, name, choices, index):
        if len(choices) == 1:
            return choices[0]
        return self.trial.suggest_categorical(self.param_name(name, index), list(choices))

    def _integer(self, name, low, high, index):
        if low == high:
            return low
        return self.trial.suggest_int(self.param_name(name, index), low, high)


class RngChooser(Chooser):
    """Draws every choice uniformly, like Optuna's ``RandomSampler``."""

    def __init__(self, rng: "np.random.Generator"):
        super().__init__()
        self.rng = rng

    def _choice(self, name, choices, index):
        return choices[int(self.rng.integers(len(choices)))]

    def _integer(self, name, low, high, index):
        return int(self.rng.integers(low, high + 1))


class ValidatingChooser(Chooser):
    """Reads the values of a given arch dict and checks each one against its choices."""

    def __init__(self, space: str, data: Mapping[str, Any], ignore: Iterable[str] = ("space", "options")):
        super().__init__()
        self.space = space
        self.data = data
        self.ignore = set(ignore)

    def error(self, message: str) -> InvalidArchError:
        return InvalidArchError(f"{self.space} arch: {message}")

    def _raw(self, name: str, index: int | None) -> Any:
        if name not in self.data:
            raise self.error(f"missing key {name!r}")
        value = self.data[name]
        if index is None:
            return value
        return value[index]  # length checked by items()

    def items(self, name: str, count: int, per: str = "") -> range:
        if name not in self.data:
            raise self.error(f"missing key {name!r}")
        value = self.data[name]
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise self.error(f"{name!r} must be a list of {count} values, got {value!r}")
        if len(value) != count:
            why = f" ({per})" if per else ""
            raise self.error(f"{name!r} has {len(value)} values, expected {count}{why}")
        return super().items(name, count, per)

    def skip(self, name: str, index: int, why: str) -> None:
        if self._raw(name, index) is not None:
            raise self.error(f"{_field(name, index)!r} must be null ({why}), got {self._raw(name, index)!r}")

    def _choice(self, name, choices, index):
        raw = self._raw(name, index)
        for choice in choices:
            if _same_value(raw, choice):
                return choice
        raise self.error(f"{_field(name, index)!r} value {raw!r} not in {_listing(choices)}")

    def _integer(self, name, low, high, index):
        raw = self._raw(name, index)
        value = _as_int(raw)
        if value is None or not low <= value <= high:
            allowed = _listing(range(low, high + 1)) if high - low < 12 else f"[{low}, ..., {high}]"
            raise self.error(f"{_field(name, index)!r} value {raw!r} not in {allowed}")
        return value

    def finish(self) -> dict[str, Any]:
        unknown = [k for k in self.data if k not in self.arch and k not in self.ignore]
        if unknown:
            raise self.error(
                f"unknown key {unknown[0]!r}; expected the keys {', '.join(repr(k) for k in self.arch)}"
            )
        return self.arch


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Option:
    """A search-space option: its default, a parser (accepting CLI strings) and help."""

    default: Any
    parse: Callable[[Any], Any]
    help: str


def parse_positive_int(value: Any) -> int:
    """``120`` or ``"120"`` -> 120."""
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[+]?\d+", value):
            raise ValueError("expected a positive integer")
        value = int(value)
    number = _as_int(value)
    if number is None or number < 1:
        raise ValueError("expected a positive integer")
    return number


def parse_shape(value: Any, rank: int = 3) -> list[int]:
    """``"16x16x3"``, ``"16,16,3"``, ``"(16, 16, 3)"`` or ``[16, 16, 3]`` -> ``[16, 16, 3]``."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s()\[\]]+", value.strip().lower()) if p]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise ValueError(f"expected {rank} sizes such as '32x32x3'")
    try:
        sizes = [parse_positive_int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected {rank} positive sizes such as '32x32x3'") from None
    if len(sizes) != rank:
        raise ValueError(f"expected {rank} sizes (height x width x channels), got {len(sizes)}")
    return sizes


def parse_name(choices: Sequence[str]) -> Callable[[Any], str]:
    """A parser that accepts one of ``choices``, case-insensitively."""
    lowered = {c.lower(): c for c in choices}

    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in lowered:
            return lowered[value.strip().lower()]
        raise ValueError(f"expected one of {', '.join(choices)}")

    return parse


# --------------------------------------------------------------------------- the interface


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, no NaN: the same text for the same value in every process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


class SearchSpace(ABC):
    """A family of networks: the choices, and how a choice of each becomes a Keras model.

    Subclasses set :attr:`name`, :attr:`param_prefix`, :attr:`kind` and
    :attr:`option_specs`, describe their choices in :meth:`_draw` and build in
    :meth:`_build`.

    Attributes:
        name: the registry name (``search_spaces.get(name)``).
        kind: ``"task"`` (an edge task family, built for the NPU), ``"benchmark"``
            (a published benchmark space, built faithfully to its reference) or
            ``"breadth"`` (structures from no task family, for training predictors).
        options: the space's canonical options (JSON-safe), part of every ``arch_id``.
        npu_first: built so that Vela places (nearly) every operator on the Ethos-U's NPU;
            ``False`` for a space that draws what CPU files have (``mobile``).
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "task"
    npu_first: ClassVar[bool] = True
    description: ClassVar[str] = ""
    param_prefix: ClassVar[str]
    option_specs: ClassVar[dict[str, Option]] = {}

    def __init__(self, **options: Any):
        self.options: dict[str, Any] = self._parse_options(options)

    # ----- options
    def _parse_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [k for k in given if k not in self.option_specs]
        if unknown:
            known = ", ".join(sorted(self.option_specs)) or "none"
            raise InvalidOptionError(f"search space {self.name!r} has no option {unknown[0]!r}; its options: {known}")
        options = {}
        for key, spec in self.option_specs.items():
            if key not in given or given[key] is None:
                options[key] = spec.default
                continue
            try:
                options[key] = spec.parse(given[key])
            except ValueError as exc:
                raise InvalidOptionError(
                    f"search space {self.name!r}: option {key!r} value {given[key]!r} is invalid ({exc}); {spec.help}"
                ) from None
        return self._resolve_options(options, given)

    def _resolve_options(self, options: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """Hook: derive options from one another (e.g. a dataset preset)."""
        return options

    def _options_without_defaults(self, options: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """A ``_resolve_options`` for options added after a space's networks were stored: an
        option at its default is left out, so every stored ``arch_id`` stays."""
        return {k: v for k, v in options.items() if v != self.option_specs[k].default}

    # ----- the description of the choices
    @abstractmethod
    def _draw(self, ch: Chooser) -> None:
        """Asks ``ch`` for every choice of one arch (in a fixed order; define-by-run)."""

    def _to_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: public arch dict -> the fields :meth:`_draw` asks for (identity here)."""
        return data

    def _from_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Hook: the inverse of :meth:`_to_fields`."""
        return fields

    def _from_native(self, data: Any) -> dict[str, Any] | None:
        """Hook: a benchmark's own encoding (e.g. an NB201 string) -> arch dict, else None."""
        return None

    def _arch(self, ch: Chooser) -> Arch:
        self._draw(ch)
        return {"space": self.name, **self._from_fields(ch.finish())}

    # ----- public API
    def suggest(self, trial: "optuna.trial.BaseTrial") -> Arch:
        """Asks an Optuna trial for an arch (define-by-run).

        ``optuna.trial.FixedTrial(trial.params)`` rebuilds the same arch.
        """
        return self._arch(TrialChooser(trial, self.param_prefix))

    def sample(self, rng: "np.random.Generator | int | None" = None) -> Arch:
        """Draws an arch uniformly (the distribution of a random Optuna sampler).

        Args:
            rng: a NumPy ``Generator`` (or a seed for one).
        """
        import numpy as np

        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        return self._arch(RngChooser(rng))

    def decode(self, data: Any) -> Arch:
        """Validates an arch (dict, encoded dict, JSON text or the benchmark's own form).

        Raises:
            InvalidArchError: the message names the offending field.
        """
        data = self._coerce(data)
        fields = self._to_fields(data)
        return self._arch(ValidatingChooser(self.name, fields))

    def encode(self, arch: Any) -> dict[str, Any]:
        """The JSON-safe record of an arch: ``{"space", "options", <choices>}``."""
        choices = {k: v for k, v in self.decode(arch).items() if k != "space"}
        return {"space": self.name, "options": json.loads(json.dumps(self.options)), **choices}

    def arch_id(self, arch: Any) -> str:
        """A stable id: the first 16 hex digits of the SHA-1 of the canonical encoding."""
        return hashlib.sha1(canonical_json(self.encode(arch)).encode("ascii")).hexdigest()[:16]

    def build(self, arch: Any, *, seed: int = 0, batch_size: int | None = 1, keras: Any = None) -> "keras.Model":
        """A trainable Keras functional model of ``arch``.

        Clears the Keras session first (layer names restart) and seeds the weights,
        so the same arch and seed give the same model, and the same TFLite bytes.

        Args:
            arch: an arch of this space (validated here).
            seed: weight-initialisation seed (``keras.utils.set_random_seed``, which
                also seeds Python's and NumPy's global generators).
            batch_size: the static batch size (1 for export; None to train).
            keras: the module to build with (default: Keras itself; the lowering passes
                a stand-in that records the graph, ``predictors.graph.from_arch``).
        """
        arch = self.decode(arch)
        if keras is None:
            from search_spaces._quiet import import_keras

            keras = import_keras()
        keras.backend.clear_session()
        keras.utils.set_random_seed(int(seed))
        inputs = keras.Input(tuple(self.input_shape(arch)), batch_size=batch_size, name="input")
        outputs = self._build(arch, inputs, keras)
        return keras.Model(inputs, outputs, name=f"{self.name}_{self.arch_id(arch)}")

    @abstractmethod
    def _build(self, arch: Arch, inputs: Any, keras: Any) -> Any:
        """Returns the output tensor(s) for a validated arch."""

    @abstractmethod
    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        """(height, width, channels), without the batch."""

    @abstractmethod
    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        """The shape of every model output, batch 1 included, in output order."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "options": json.loads(json.dumps(self.options)),
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # ----- helpers
    def _coerce(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str) and data.strip().startswith("{"):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InvalidArchError(f"{self.name} arch: not valid JSON ({exc})") from None
        if not isinstance(data, Mapping):
            native = self._from_native(data)
            if native is None:
                raise InvalidArchError(
                    f"{self.name} arch: expected a dict of choices (from sample, suggest or encode), "
                    f"got {type(data).__name__} {data!r:.80}"
                )
            data = native
        space = data.get("space", self.name)
        if space != self.name:
            raise InvalidArchError(
                f"{self.name} arch: 'space' is {space!r}; decode it with search_spaces.get({space!r})"
            )
        if "options" in data:
            given = data["options"]
            if not isinstance(given, Mapping) or canonical_json(dict(given)) != canonical_json(self.options):
                raise InvalidArchError(
                    f"{self.name} arch: 'options' {given!r} differ from this space's {self.options!r}; "
                    f"decode it with search_spaces.from_encoded(...) or search_spaces.get({self.name!r}, **options)"
                )
        return dict(data)

    def _input_dependent(self, arch: Any, field: str) -> Arch:
        if arch is None:
            raise SearchSpaceError(
                f"{self.name}: the input shape depends on the arch ({field!r}); pass the arch"
            )
        return self.decode(arch)


class FixedInputClassifier(SearchSpace):
    """A classifier whose input shape and class count are options, not choices."""

    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        return tuple(self.options["input_shape"])

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        self.decode(arch)
        return [(1, self.options["num_classes"])]


# --------------------------------------------------------------------------- the registry

_REGISTRY: dict[str, Callable[..., SearchSpace]] = {}


def register_space(space: Any, factory: Callable[..., SearchSpace] | None = None) -> Any:
    """Registers a space: ``register_space(MySpace)`` (a class with ``name``), usable as a
    class decorator, or ``register_space("name", factory)``. Later registrations replace
    earlier ones."""
    if factory is None:
        _REGISTRY[space.name] = space
        return space
    _REGISTRY[str(space)] = factory
    return factory


def names() -> list[str]:
    """The registered search-space names, sorted."""
    return sorted(_REGISTRY)


def list_spaces(pattern: str = "*") -> list[str]:
    """The registered names matching a shell-style ``pattern``."""
    return [n for n in names() if fnmatch.fnmatchcase(n, pattern)]


def get(name: str, **options: Any) -> SearchSpace:
    """Builds the search space registered as ``name``.

    Args:
        options: the space's options (strings accepted, as from ``--space-option K=V``).

    Raises:
        UnknownNameError: no space has that name.
        InvalidOptionError: an unknown or malformed option.
    """
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise unknown_name("search space", name, names()) from None
    return factory(**options)


def from_encoded(encoded: Any) -> tuple[SearchSpace, Arch]:
    """The space (with the recorded options) and the arch of an :meth:`SearchSpace.encode` record."""
    if isinstance(encoded, str):
        try:
            encoded = json.loads(encoded)
        except ValueError as exc:
            raise InvalidArchError(f"encoded arch is not valid JSON ({exc})") from None
    if not isinstance(encoded, Mapping) or "space" not in encoded:
        raise InvalidArchError("an encoded arch is a dict with a 'space' key (from SearchSpace.encode)")
    options = encoded.get("options") or {}
    if not isinstance(options, Mapping):
        raise InvalidArchError(f"encoded arch: 'options' must be a dict, got {options!r}")
    space = get(encoded["space"], **options)
    return space, space.decode(encoded)


def read_archs(texts: Sequence[str] = (), jsonl: str | os.PathLike | None = None) -> list[Any]:
    """Archs given as JSON texts (``--arch``) and as a JSON-lines file (``--archs``), in order.

    Raises:
        HwnasError: a text or line that is not JSON (which one: ``--arch #k`` or the line
            number), or a file that cannot be read.
    """
    archs = []
    for k, text in enumerate(texts, start=1):
        try:
            archs.append(json.loads(text))
        except ValueError as exc:
            raise HwnasError(f"--arch #{k} is not JSON ({exc.msg} at character {exc.pos})") from None
    if jsonl:
        try:
            lines = Path(jsonl).read_text().splitlines()
        except OSError as exc:
            raise HwnasError(f"{jsonl}: cannot read ({exc.strerror})") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                archs.append(json.loads(line))
            except ValueError as exc:
                raise HwnasError(f"{jsonl}: line {n} is not JSON ({exc.msg})") from None
    return archs
