"""Write predictors/_option_slots.py from the installed tflite package's schema classes.

    python tools/gen_option_slots.py > predictors/_option_slots.py

Each option field's vtable slot, struct format and default are read from its generated
accessor's source (`self._tab.Offset(slot)`, `...Get(<Type>Flags`, `return <default>`); an
accessor of any other shape stops the script rather than guess.
"""
import importlib.metadata
import inspect
import re
import sys

import tflite

FLAG = {"Bool": "<?", "Int8": "<b", "Uint8": "<B", "Int16": "<h", "Uint16": "<H", "Int32": "<i",
        "Uint32": "<I", "Int64": "<q", "Uint64": "<Q", "Float32": "<f", "Float64": "<d"}

def fields_of(cls):
    out = []
    for attr, fn in vars(cls).items():
        if attr.startswith("_") or attr == "Init" or attr.startswith("GetRootAs") or not callable(fn):
            continue
        if attr.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
            continue
        try:
            if len(inspect.signature(fn).parameters) != 1:
                continue
            src = inspect.getsource(fn)
        except (TypeError, ValueError, OSError):
            continue
        if "String(" in src or "Indirect(" in src or "Table()" in src:
            continue
        slot = re.findall(r"self\._tab\.Offset\((\d+)\)", src)
        flags = re.findall(r"self\._tab\.Get\(flatbuffers\.number_types\.(\w+)Flags", src)
        default = re.findall(r"^\s*return (-?\d+(?:\.\d*)?|True|False)\s*$", src, re.M)
        if not (len(slot) == 1 and len(flags) == 1 and flags[0] in FLAG and len(default) == 1):
            raise SystemExit(f"{cls.__name__}.{attr}: not a plain numeric scalar accessor")
        d = {"True": 1.0, "False": 0.0}.get(default[0])
        out.append((attr, int(slot[0]), FLAG[flags[0]], float(default[0]) if d is None else d))
    return tuple(sorted(out))

lines = []
for union in ("BuiltinOptions", "BuiltinOptions2"):
    enum = getattr(tflite, union)
    lines.append(f"    {union!r}: {{")
    for name, code in sorted(((k, v) for k, v in vars(enum).items() if not k.startswith("_") and k != "NONE"), key=lambda kv: kv[1]):
        cls = getattr(tflite, name)
        fs = fields_of(cls)
        body = ", ".join(f"({a!r}, {s}, {f!r}, {d!r})" for a, s, f, d in fs)
        lines.append(f"        {code}: ({name!r}, ({body}{',' if len(fs) == 1 else ''})),")
    lines.append("    },")
version = importlib.metadata.version("tflite")
text = f'''"""The numeric scalar fields of every TFLite builtin-options table: an explicit slot table.

``OPTION_SLOTS[union][type code] = (table name, ((field, vtable slot, struct format,
default), ...))`` for both option unions of an ``Operator`` (``BuiltinOptions``,
``BuiltinOptions2``). Strings, vectors and sub-tables are not features and are left out.
Generated from the ``tflite`` {version} package's schema classes (the vtable offsets and
defaults of their accessors); ``tests/predictors_tests/test_tflite_model.py`` checks it
against those accessors on real files. Regenerate after a schema upgrade:
``python tools/gen_option_slots.py > predictors/_option_slots.py``.
"""
from __future__ import annotations

OPTION_SLOTS: dict[str, dict[int, tuple[str, tuple[tuple[str, int, str, float], ...]]]] = {{
''' + "\n".join(lines) + "\n}\n"
sys.stdout.write(text)
