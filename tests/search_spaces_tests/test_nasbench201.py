"""NAS-Bench-201: the published sizes, the public tables' arch strings, bad strings."""
from __future__ import annotations

import csv
import itertools

import pytest

import search_spaces
from search_spaces import InvalidArchError, InvalidOptionError
from search_spaces.nasbench201 import EDGES, OPS, arch_string, parse_arch_str
from tests.search_spaces_tests.helpers import conv_dense_macs, shared_data, trainable_params

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"

# Published by the NAS-Bench-201 API (get_cost_info): the range over all 15,625 cells,
# params in MB (1e6 parameters) and FLOPs in M (multiply-adds of convs and the
# classifier, its bias included).  The largest is the all-nor_conv_3x3 cell, the
# smallest any cell without convolutions.  Values as quoted by EvoXBench
# (NASBench201 min/max normalisation) and by NB201 API dumps.
PUBLISHED = {
    # dataset: (params MB of ALL_CONV3, of ALL_SKIP), (MFLOPs of ALL_CONV3, of ALL_SKIP)
    "cifar10": ((1.531546, 0.073306), (220.11969, 7.78305)),
    "cifar100": ((1.537396, 0.079156), (220.12554, 7.7889)),
    "ImageNet16-120": ((1.538696, 0.080456), (55.03756, 1.9534)),
}


def reference_params(arch_str: str, num_classes: int = 10, c: int = 16, n: int = 5) -> int:
    """Parameters of xautodl's TinyNetwork (the NB201 reference, PyTorch) for one cell.

    Counts what PyTorch counts: conv weights (no bias), BN gamma and beta, the
    classifier's weight and bias.  Every op of the cell counts, used or not.
    """
    per_op = {"nor_conv_3x3": lambda ch: ch * ch * 9 + 2 * ch, "nor_conv_1x1": lambda ch: ch * ch + 2 * ch}
    ops = parse_arch_str(arch_str)
    total = 3 * c * 9 + 2 * c  # stem conv + BN
    channels = [c, 2 * c, 4 * c]
    for stage, ch in enumerate(channels):
        if stage:  # ResNetBasicblock(cin, ch, stride 2): conv_a + BN, conv_b + BN, 1x1 shortcut
            cin = channels[stage - 1]
            total += cin * ch * 9 + 2 * ch + ch * ch * 9 + 2 * ch + cin * ch
        total += n * sum(per_op[op](ch) for op in ops if op in per_op)
    return total + 2 * 4 * c + 4 * c * num_classes + num_classes  # lastact BN, classifier


def every_op_is_used(arch_str: str) -> bool:
    """True if every non-none op reaches the cell output (no op Keras would prune)."""
    ops = dict(zip(EDGES, parse_arch_str(arch_str)))
    live = {3}
    for node in (2, 1):
        if any(ops[(to, node)] != "none" and to in live for to in range(node + 1, 4)):
            live.add(node)
    return all(op == "none" or to in live for (to, _), op in ops.items())


@pytest.fixture(scope="module")
def nb201():
    return search_spaces.get("nasbench201")


@pytest.mark.parametrize("dataset", list(PUBLISHED))
def test_published_parameter_counts_and_flops(dataset):
    space = search_spaces.get("nasbench201", dataset=dataset)
    (params_conv3, params_skip), (mflops_conv3, mflops_skip) = PUBLISHED[dataset]
    for arch, params, mflops in ((ALL_CONV3, params_conv3, mflops_conv3), (ALL_SKIP, params_skip, mflops_skip)):
        model = space.build(arch)
        assert trainable_params(model) == round(params * 1e6), (dataset, arch)
        assert conv_dense_macs(model) == round(mflops * 1e6), (dataset, arch)
        assert reference_params(arch, space.options["num_classes"]) == round(params * 1e6)


def test_parameter_counts_match_the_reference_definition(nb201):
    """Cells from the public table (every op used) against the PyTorch reference's count."""
    rows = _table_arch_strings(limit=200)
    chosen = [a for a in rows if every_op_is_used(a) and "nor_conv" in a][:6]
    assert len(chosen) == 6
    for arch in chosen:
        assert trainable_params(nb201.build(arch)) == reference_params(arch), arch


def _table_arch_strings(limit: int | None = None) -> list[str]:
    path = shared_data("nb201", "help_nb201_latency_ms.csv")
    with open(path, newline="") as f:
        return [row["arch_str"] for row in itertools.islice(csv.DictReader(f), limit)]


def test_every_arch_string_in_the_public_tables_decodes(nb201):
    latency_table = _table_arch_strings()
    assert len(latency_table) == 15625
    with open(shared_data("nb201", "nats_bench_accuracy.csv"), newline="") as f:
        accuracy_table = [row["ArchitectureString"] for row in csv.DictReader(f)]
    assert accuracy_table == latency_table  # same index order in both files
    seen = set()
    for text in latency_table:
        arch = nb201.decode(text)
        assert arch == {"space": "nasbench201", "arch_str": text}
        seen.add(nb201.arch_id(arch))
    assert len(seen) == 15625


def test_the_space_is_exactly_the_15625_cells(nb201):
    cells = {arch_string(list(ops)) for ops in itertools.product(OPS, repeat=6)}
    assert len(cells) == 5**6
    assert set(_table_arch_strings()) == cells


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "1 node"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "2 node"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "should read from node 0"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has 1 incoming"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "should read from node 0"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "is not of the form"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "4 node"),
    ],
)
def test_unparsable_strings_name_the_field_and_the_reason(nb201, text, reason):
    with pytest.raises(InvalidArchError, match="'arch_str'") as info:
        nb201.decode({"arch_str": text})
    assert reason in str(info.value)


def test_bad_arch_dicts(nb201):
    with pytest.raises(InvalidArchError, match="missing key 'arch_str'"):
        nb201.decode({"space": "nasbench201"})
    with pytest.raises(InvalidArchError, match="unknown key 'ops'"):
        nb201.decode({"arch_str": ALL_SKIP, "ops": []})
    with pytest.raises(InvalidArchError, match="'arch_str' must be a string"):
        nb201.decode({"arch_str": 42})
    with pytest.raises(InvalidArchError, match="expected a dict"):
        nb201.decode(15624)  # an NB201 index needs the table; pass the string


def test_decode_takes_the_bare_string_and_suggest_params_name_the_edges(nb201):
    assert nb201.decode(f"  {ALL_SKIP} ") == {"space": "nasbench201", "arch_str": ALL_SKIP}
    import optuna

    fixed = optuna.trial.FixedTrial({f"nb201_edge_{to}_{source}": "nor_conv_3x3" for to, source in EDGES})
    assert nb201.suggest(fixed)["arch_str"] == ALL_CONV3
    assert nb201.ops(ALL_SKIP) == ["skip_connect"] * 6


def test_dataset_and_shape_options():
    imagenet = search_spaces.get("nasbench201", dataset="imagenet16-120")
    assert imagenet.options == {"input_shape": [16, 16, 3], "num_classes": 120}
    assert imagenet.input_shape() == (16, 16, 3)
    same = search_spaces.get("nasbench201", input_shape="16x16x3", num_classes="120")
    assert same.arch_id(ALL_SKIP) == imagenet.arch_id(ALL_SKIP)
    assert search_spaces.get("nasbench201", input_shape="16,16,3").options["num_classes"] == 10
    assert search_spaces.get("nasbench201").arch_id(ALL_SKIP) != imagenet.arch_id(ALL_SKIP)
    with pytest.raises(InvalidOptionError, match="'input_shape' value '16x16' is invalid"):
        search_spaces.get("nasbench201", input_shape="16x16")
    with pytest.raises(InvalidOptionError, match="'dataset' value 'mnist'"):
        search_spaces.get("nasbench201", dataset="mnist")
    with pytest.raises(InvalidOptionError, match="'num_classes' value '0'"):
        search_spaces.get("nasbench201", num_classes="0")
    with pytest.raises(InvalidOptionError, match="'input_shape' .* divisible by 4"):
        search_spaces.get("nasbench201", input_shape="30x30x3")
    assert search_spaces.get("nasbench201", input_shape="64x64x1").build(ALL_SKIP).output_shape == (1, 10)


def test_encoded_arch_carries_the_options(nb201):
    imagenet = search_spaces.get("nasbench201", dataset="ImageNet16-120")
    encoded = imagenet.encode(ALL_CONV3)
    assert encoded == {
        "space": "nasbench201",
        "options": {"input_shape": [16, 16, 3], "num_classes": 120},
        "arch_str": ALL_CONV3,
    }
    space, arch = search_spaces.from_encoded(encoded)
    assert space.options == imagenet.options and arch == imagenet.decode(ALL_CONV3)
    with pytest.raises(InvalidArchError, match="'options'"):
        nb201.decode(encoded)  # a CIFAR-10 space refuses an ImageNet16-120 record


@pytest.mark.parametrize(
    "arch",
    [
        ALL_NONE,  # every cell outputs zeros
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",  # node 1 unused, node 2 zero
    ],
)
def test_zero_nodes_export_run_and_compile(arch):
    from predictors import targets
    from predictors.tflite_model import inspect_model
    from search_spaces.export import to_tflite
    from tests.search_spaces_tests.helpers import run_litert

    space = search_spaces.get("nasbench201", dataset="ImageNet16-120")  # 16x16: quick
    tflite = to_tflite(space.build(arch))
    assert "MUL" in inspect_model(tflite).opcodes  # the Zero op stays in the graph
    assert run_litert(tflite) == space.output_shapes(arch)
    measured = targets.get("ethos-u55-128").measure(tflite)
    assert measured["cpu_operators"] == 0 and measured["latency_ms"] > 0


def test_zero_edges_compute_keeps_every_operation_of_the_reference():
    from predictors.graph import from_tflite
    from predictors.tflite_model import inspect_model
    from search_spaces.export import to_tflite

    # node 1's convolution feeds only `none` edges: dead code unless zero edges are computed
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    twin = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"  # same live graph
    pruned = search_spaces.get("nasbench201", dataset="ImageNet16-120")
    computed = search_spaces.get("nasbench201", dataset="ImageNet16-120", zero_edges="compute")
    assert "zero_edges" not in pruned.encode(arch)["options"]  # the default leaves arch ids as they were
    assert computed.encode(arch)["options"]["zero_edges"] == "compute"
    files = {name: {a: to_tflite(space.build(a), num_samples=1) for a in (arch, twin)}
             for name, space in (("prune", pruned), ("compute", computed))}

    def same_graph(a, b):
        ga, gb = from_tflite(a), from_tflite(b)
        return ga.x.shape == gb.x.shape and bool((ga.x == gb.x).all())

    assert same_graph(files["prune"][arch], files["prune"][twin])  # two architectures, one graph
    assert not same_graph(files["compute"][arch], files["compute"][twin])
    ops = {name: inspect_model(files[name][arch]).opcodes for name in files}
    assert ops["compute"].count("CONV_2D") == ops["prune"].count("CONV_2D") + 15  # the dead one, per cell
    with pytest.raises(InvalidOptionError, match="zero_edges"):
        search_spaces.get("nasbench201", zero_edges="skip")
