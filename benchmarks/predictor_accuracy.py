"""Accuracy of PerfSAGE: in-space, leave-one-space-out, out-of-space, calibration.

    python benchmarks/predictor_accuracy.py [--data data/edgedlperf] [--target T]...
        [--epochs 200] [--save-dir predictors/pretrained] [--no-published] [--no-loso] [--host CPU]

Per target (one predictor per target, like the shipped ones):
1. in-space: our configuration and the published one (Chai et al. 2023), trained on
   the same 80/10/10 split by network, scored on the test split per space and metric;
2. leave-one-space-out: trained on three task spaces, tested on the fourth;
3. out-of-space: the in-space predictor on networks from no search space
   (keras.applications and TinyML classics, int8, labelled by the target itself);
4. calibration: share of test truths inside the predicted mean +- 2 std;
and the training time on this machine.  ``--save-dir`` writes the in-space
predictors as ``perfsage-<target>``: the shipped ones come from this run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


TASK_SPACES = ("image_classification", "keyword_spotting", "object_detection", "super_resolution")


def zoo_models():
    """Networks from no search space: (name, keras model builder)."""
    from search_spaces import import_keras
    from search_spaces import zoo

    keras = import_keras()
    apps = keras.applications
    return [
        ("DS-CNN (KWS)", zoo.ds_cnn),
        ("ResNet-8 (CIFAR)", zoo.resnet8),
        ("MobileNetV1-0.25@96", zoo.mobilenet_v1_025),
        ("FC autoencoder", zoo.fc_autoencoder),
        ("MobileNetV2-0.35@96", lambda: apps.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35,
                                                         classes=10)),
        ("MobileNetV2-1.0@128", lambda: apps.MobileNetV2(weights=None, input_shape=(128, 128, 3), classes=100)),
        ("MobileNetV3Small@96", lambda: apps.MobileNetV3Small(weights=None, input_shape=(96, 96, 3), classes=10,
                                                              include_preprocessing=False)),
        ("EfficientNetB0@96", lambda: apps.EfficientNetB0(weights=None, input_shape=(96, 96, 3), classes=10)),
        ("ResNet50@96", lambda: apps.ResNet50(weights=None, input_shape=(96, 96, 3), classes=10)),
        ("DenseNet121@64", lambda: apps.DenseNet121(weights=None, input_shape=(64, 64, 3), classes=10)),
        # added with the generic space, whose block vocabulary covers the ten above: plain
        # convs with a 25 M-weight FC head, separable-conv residuals, asymmetric-kernel
        # inception branches, NAS cells, and the larger MobileNetV3
        ("VGG16@64", lambda: apps.VGG16(weights=None, input_shape=(64, 64, 3), classes=10)),
        ("Xception@96", lambda: apps.Xception(weights=None, input_shape=(96, 96, 3), classes=10)),
        ("InceptionV3@96", lambda: apps.InceptionV3(weights=None, input_shape=(96, 96, 3), classes=10)),
        ("NASNetMobile@96", lambda: apps.NASNetMobile(weights=None, input_shape=(96, 96, 3), classes=10)),
        ("MobileNetV3Large@96", lambda: apps.MobileNetV3Large(weights=None, input_shape=(96, 96, 3), classes=10,
                                                              include_preprocessing=False)),
        # added for the arbitrary-graphs issue (40 or more networks): the families above at
        # other widths and resolutions, the rest of keras.applications that fits an Ethos-U
        # here, and TinyML classics
        ("LeNet-5", zoo.lenet5),
        ("micro_speech tiny_conv", zoo.micro_speech),
        ("Keras MNIST CNN", zoo.mnist_cnn),
        ("ECG 1-D CNN", zoo.ecg_cnn1d),
        *[(f"MobileNetV1-{a}@{r}", lambda a=a, r=r: apps.MobileNet(weights=None, input_shape=(r, r, 3), alpha=a,
                                                                     classes=10))
          for a, r in ((0.5, 128), (0.75, 96), (1.0, 64))],
        *[(f"MobileNetV2-{a}@{r}", lambda a=a, r=r: apps.MobileNetV2(weights=None, input_shape=(r, r, 3), alpha=a,
                                                                       classes=10))
          for a, r in ((0.5, 64), (0.75, 160), (1.4, 96), (0.35, 128))],
        *[(f"MobileNetV3Small-{a}{'-min' if m else ''}@{r}",
           lambda a=a, r=r, m=m: apps.MobileNetV3Small(weights=None, input_shape=(r, r, 3), alpha=a, minimalistic=m,
                                                      classes=10, include_preprocessing=False))
          for a, r, m in ((0.75, 128, False), (1.0, 96, True))],
        *[(f"MobileNetV3Large-{a}{'-min' if m else ''}@{r}",
           lambda a=a, r=r, m=m: apps.MobileNetV3Large(weights=None, input_shape=(r, r, 3), alpha=a, minimalistic=m,
                                                      classes=10, include_preprocessing=False))
          for a, r, m in ((0.75, 64, False), (1.0, 128, True))],
        ("EfficientNetB0@64", lambda: apps.EfficientNetB0(weights=None, input_shape=(64, 64, 3), classes=10)),
        ("EfficientNetB1@96", lambda: apps.EfficientNetB1(weights=None, input_shape=(96, 96, 3), classes=10)),
        ("EfficientNetV2B0@64", lambda: apps.EfficientNetV2B0(weights=None, input_shape=(64, 64, 3), classes=10,
                                                              include_preprocessing=False)),
        ("ResNet50@64", lambda: apps.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)),
        ("ResNet50V2@64", lambda: apps.ResNet50V2(weights=None, input_shape=(64, 64, 3), classes=10)),
        ("DenseNet121@32", lambda: apps.DenseNet121(weights=None, input_shape=(32, 32, 3), classes=10)),
        ("NASNetMobile@64", lambda: apps.NASNetMobile(weights=None, input_shape=(64, 64, 3), classes=10)),
        ("InceptionV3@75", lambda: apps.InceptionV3(weights=None, input_shape=(75, 75, 3), classes=10)),
        ("Xception@71", lambda: apps.Xception(weights=None, input_shape=(71, 71, 3), classes=10)),
        ("VGG19@32", lambda: apps.VGG19(weights=None, input_shape=(32, 32, 3), classes=10)),
        ("MobileNetV2-1.0@64", lambda: apps.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=10)),
        ("Transformer encoder block", zoo.attention_block),
    ]


def zoo_labelled(targets: list[str], cache: str) -> list[dict]:
    """Exports and labels the zoo once; cached as .tflite + JSON under ``cache``."""
    from hwnas.export import to_tflite
    from predictors import targets as registry

    os.makedirs(cache, exist_ok=True)
    out = []
    for name, build in zoo_models():
        stem = os.path.join(cache, "".join(c if c.isalnum() else "_" for c in name))
        path, meta = stem + ".tflite", stem + ".json"
        if not os.path.exists(path):
            with open(path + ".part", "wb") as f:
                f.write(to_tflite(build(), num_samples=2))
            os.replace(path + ".part", path)
        labels = json.load(open(meta)) if os.path.exists(meta) else {}
        tflite = open(path, "rb").read()
        for t in targets:
            if t not in labels:
                labels[t] = registry.get(t).measure(tflite)
                with open(meta + ".part", "w") as f:
                    json.dump(labels, f)
                os.replace(meta + ".part", meta)
        out.append({"name": name, "path": path, "labels": labels})
    return out


def _machine(info: dict) -> str:
    """This host (the training times are its), not the machines that labelled the data."""
    from predictors.targets.litert import machine

    m = machine()
    return f"{m.get('cpu_model', platform.machine())} ({m.get('cpu_cores', os.cpu_count())} cores)"


def fmt(v, digits=2):
    return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def score_rows(report: dict, target: str, label: str, by_space: bool = True):
    rows = []
    groups = list(report.get("by_space", {}).items()) if by_space else [("all", report)]
    for q, rep in report.get("by_regime", {}).items():  # per export regime: each space, then all of them
        groups += [(f"{space} ({q})", r) for space, r in rep["by_space"].items()] + [(f"all ({q})", rep)]
    for space, rep in groups:
        for metric, s in sorted(rep.get(target, {}).items()):
            rows.append((label, target, space, metric, s["n"], fmt(s["mape"]), fmt(s["acc10"], 1), fmt(s["spearman"], 3),
                         fmt(s.get("within_2std"), 1)))
    return rows


HEADER = ("model", "target", "test space", "metric", "n", "MAPE %", "acc10 %", "Spearman", "in +-2std %")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/edgedlperf")
    parser.add_argument("--target", action="append", help="default: every target with labels")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--config", default="{}", help="JSON overrides of predictors.model.DEFAULT")
    parser.add_argument("--save-dir", help="write the in-space predictors here as perfsage-<target>")
    parser.add_argument("--no-ours", action="store_true",
                        help="skip training our in-space predictors (the zoo uses those in --save-dir, if any)")
    parser.add_argument("--no-published", action="store_true", help="skip the published-configuration baseline")
    parser.add_argument("--no-loso", action="store_true", help="skip leave-one-space-out")
    parser.add_argument("--loso-epochs", type=int, help="epochs of the leave-one-space-out runs (default --epochs)")
    parser.add_argument("--loso-targets", default="ethos-u55-128", help="comma list; 'all' for every target")
    parser.add_argument("--spaces", help="comma list: train and test on these spaces only (default: every one "
                                             "with labels; a space left out stays out of space)")
    parser.add_argument("--loso-spaces", default="all",
                        help="comma list of the spaces to leave out in turn (e.g. half of them per process)")
    parser.add_argument("--no-zoo", action="store_true", help="skip the out-of-space networks")
    parser.add_argument("--zoo-cache", default=os.path.join(os.path.expanduser("~"), ".cache", "hwnas", "zoo"))
    parser.add_argument("--json", help="also write every report to this JSON file")
    parser.add_argument("--host", help="train on the labels this host timed (cpu-litert's: `hwnas train --host`)")
    parser.add_argument("--workers", type=int, default=1,
                        help="ensemble members trained at once, a process and a core each (the weights are the same)")
    args = parser.parse_args(argv)

    import torch

    from hwnas.cli import format_table
    from predictors.dataset import DatasetStore
    from predictors.graph import from_tflite
    from predictors.model import PUBLISHED
    from predictors.train import evaluate_graphs, torch_threads, train_predictor

    config = json.loads(args.config)
    spaces = args.spaces.split(",") if args.spaces else None
    info = DatasetStore(args.data).info()
    targets = args.target or sorted({t for counts in info["by_space"].values() for t in counts})
    print(f"data: {args.data} ({info['samples']} networks); machine: {_machine(info)}, "
          f"torch threads {torch_threads()}; epochs {args.epochs}\n")
    results: dict = {"targets": {}}
    rows, time_rows, zoo_rows, loso_rows, zoo_metric_rows = [], [], [], [], []
    in_space = {}
    for target in targets:
        name = f"perfsage-{target}"
        out = os.path.join(args.save_dir, name) if args.save_dir else None
        results["targets"][target] = {}
        if args.no_ours and args.save_dir and os.path.isdir(os.path.join(args.save_dir, name)):
            from predictors.predictor import load_predictor

            in_space[target] = load_predictor(os.path.join(args.save_dir, name))  # for the zoo table
        if not args.no_ours:
            t0 = time.time()
            predictor, report = train_predictor([args.data], out, config=config, epochs=args.epochs,
                                                targets=[target], name=name, progress=False, spaces=spaces,
                                                host=args.host, workers=args.workers)
            in_space[target] = predictor
            time_rows.append((f"ours: {target}", report["split"]["train"], predictor.manifest["ensemble"],
                              f"{time.time() - t0:.0f}"))
            rows += score_rows(report["test"], target, "ours")
            results["targets"][target]["ours"] = report
        if not args.no_published:
            t0 = time.time()
            _, pub = train_predictor([args.data], None, config=dict(PUBLISHED), epochs=args.epochs,
                                     targets=[target], progress=False, host=args.host)
            time_rows.append((f"published: {target}", pub["split"]["train"], 1, f"{time.time() - t0:.0f}"))
            rows += score_rows(pub["test"], target, "published")
            results["targets"][target]["published"] = pub
    print("In-space: test split (10 % of the networks, by network), per space")
    print(format_table(rows, HEADER))

    loso_targets = targets if args.loso_targets == "all" else [t for t in args.loso_targets.split(",") if t in targets]
    if not args.no_loso:
        for target in loso_targets:
            for space in TASK_SPACES:
                if args.loso_spaces != "all" and space not in args.loso_spaces.split(","):
                    continue
                if info["by_space"].get(space, {}).get(target, 0) == 0:
                    continue
                t0 = time.time()
                p, rep = train_predictor([args.data], None, config=config, epochs=args.loso_epochs or args.epochs,
                                         targets=[target], test_spaces=[space], progress=False, host=args.host)
                loso_rows += score_rows(rep["test"], target, f"ours, without {space}")
                time_rows.append((f"leave out {space}: {target}", rep["split"]["train"],
                                  p.manifest["ensemble"], f"{time.time() - t0:.0f}"))
                results["targets"][target][f"loso:{space}"] = rep
        print("\nLeave-one-space-out: trained on the other three task spaces, tested on all of this one")
        print(format_table(loso_rows, HEADER))

    if not args.no_zoo and in_space:
        zoo = zoo_labelled(targets, args.zoo_cache)
        for target, predictor in in_space.items():
            graphs = []
            for item in zoo:
                g = from_tflite(item["path"])
                g.space = item["name"]
                g.label_names = predictor.label_names
                g.y = torch.tensor([[item["labels"][target].get(n.split("/", 1)[1], float("nan"))
                                     for n in predictor.label_names]], dtype=torch.float32)
                graphs.append(g)
            rep = evaluate_graphs(predictor, graphs)
            mean, _ = predictor.predict_graphs(graphs)
            lat = predictor.label_names.index(f"{target}/latency_ms")
            for g, m in zip(graphs, mean):
                truth = float(g.y[0, lat])
                zoo_rows.append((target, g.space, g.num_nodes, f"{truth:.2f}", f"{m[lat]:.2f}",
                                 f"{(m[lat] - truth) / truth * 100:+.1f}"))
            zoo_rows.append((target, "all (MAPE % / Spearman, latency)", "", "", fmt(rep[target]["latency_ms"]["mape"]),
                             fmt(rep[target]["latency_ms"]["spearman"], 3)))
            truth = torch.cat([g.y for g in graphs]).numpy()
            for k, label in enumerate(predictor.label_names):
                ok = np.isfinite(truth[:, k]) & (truth[:, k] > 0) & (mean[:, k] > 0)
                ratio = np.maximum(mean[ok, k] / truth[ok, k], truth[ok, k] / mean[ok, k])
                s = rep[target][label.split("/", 1)[1]]
                zoo_metric_rows.append((target, label.split("/", 1)[1], s["n"], fmt(s["mape"]), fmt(s["acc10"], 1),
                                        fmt(s["spearman"], 3), fmt(float(ratio.max()) if ratio.size else None)))
            results["targets"][target]["zoo"] = rep
        print("\nOut-of-space: networks from no search space, int8, labelled by the target itself")
        print(format_table(zoo_rows, ("target", "network", "operators", "measured ms", "predicted ms", "error %")))
        print(format_table(zoo_metric_rows, ("target", "metric", "n", "MAPE %", "acc10 %", "Spearman",
                                             "worst ratio (either way)")))

    print("\nTraining time on this machine")
    print(format_table(time_rows, ("predictor", "training networks", "members", "seconds")))
    if args.json:
        from predictors.predictor import json_safe

        with open(args.json, "w") as f:
            json.dump(json_safe(results), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
