"""The FBNet space as benchmarked by HW-NAS-Bench and HELP (CIFAR-100 setting).

22 searchable layers, each one of 9 candidate blocks, given by ``op_idx_list`` (the
column of ``../shared/data/fbnet/help_fbnet_cifar100_latency_ms.csv``, indices into
:data:`OPS`).  Macro network (HW-NAS-Bench's ``FBNet_Infer``): stem ConvNorm
3x3 (16 channels; stride 1 on CIFAR, 2 on ImageNet); seven stages of
``[1, 4, 4, 4, 4, 4, 1]`` layers with ``[16, 24, 32, 64, 112, 184, 352]`` channels
and first-layer strides ``[1, 1, 2, 2, 1, 2, 1]`` (ImageNet: ``[1, 2, 2, 2, 1, 2, 1]``);
head ConvNorm 1x1 to 1504 channels (ImageNet: 1984); global average pool; linear.

``k{K}_e{E}[_g2]`` is the FBNet block: 1x1 conv (E x input channels, 2 groups for
``_g2``) -> BN -> ReLU -> [channel shuffle for ``_g2``] -> KxK depthwise (stride) ->
BN -> ReLU -> 1x1 conv (2 groups for ``_g2``) -> BN, plus the input when the shape
is unchanged.  ``skip`` is the identity where the shape is unchanged and, as in the
HW-NAS-Bench reference, a 1x1 conv (stride) -> BN -> ReLU where the stride or the
channel count changes (the first layer of stages 2-7); every op_idx_list is valid.

Grouped 1x1 convolutions are TFLite CONV_2D with 2 groups, which Vela 5.2 runs on
the NPU; the channel shuffle becomes RESHAPE -> TRANSPOSE -> RESHAPE (NPU too).
Stride-2 depthwise convolutions pad symmetrically as the PyTorch reference does.
"""
from __future__ import annotations

import re
from typing import Any

from search_spaces import _blocks
from search_spaces._base import (
    FixedInputClassifier,
    Chooser,
    InvalidArchError,
    Option,
    parse_name,
    parse_positive_int,
    parse_shape,
    register_space,
)

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
LAYERS_PER_STAGE = (1, 4, 4, 4, 4, 4, 1)
CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STEM_CHANNELS = 16
NUM_LAYERS = sum(LAYERS_PER_STAGE)  # 22
BN_EPSILON = 1e-5
# dataset -> (input shape, classes, stage strides, stem stride, head channels)
DATASETS = {
    "cifar100": ([32, 32, 3], 100, (1, 1, 2, 2, 1, 2, 1), 1, 1504),
    "imagenet": ([224, 224, 3], 1000, (1, 2, 2, 2, 1, 2, 1), 2, 1984),
}


def op_spec(op: str) -> tuple[int, int, int] | None:
    """``'k5_e1_g2'`` -> (kernel 5, expansion 1, groups 2); ``'skip'`` -> None."""
    match = re.fullmatch(r"k(\d)_e(\d)(_g(\d))?", op)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(4) or 1)


def _parse_token(token: Any) -> int | None:
    if isinstance(token, bool):
        return None
    if isinstance(token, int):
        return token
    if isinstance(token, str):
        token = token.strip()
        if token.isdigit():
            return int(token)
        if token in OPS:
            return OPS.index(token)
    return None


@register_space
class FBNetSpace(FixedInputClassifier):
    name = "fbnet"
    kind = "benchmark"
    param_prefix = "fbnet_"
    description = "FBNet space of HW-NAS-Bench/HELP: 22 layers x 9 blocks, CIFAR-100 (op_idx_list in and out)"
    option_specs = {
        "dataset": Option("cifar100", parse_name(tuple(DATASETS)), "give cifar100 or imagenet (the macro network)"),
        "input_shape": Option(None, parse_shape, "give height x width x channels, e.g. '32x32x3'"),
        "num_classes": Option(None, parse_positive_int, "give the number of classes, e.g. 100"),
    }

    def _resolve_options(self, options, given):
        shape, classes = DATASETS[options["dataset"]][:2]
        return {
            "dataset": options["dataset"],
            "input_shape": options["input_shape"] or list(shape),
            "num_classes": options["num_classes"] or classes,
        }

    def _draw(self, ch: Chooser) -> None:
        for i in ch.items("op_idx_list", NUM_LAYERS, "one per layer"):
            ch.choice("op_idx_list", range(len(OPS)), index=i)

    def _from_native(self, data: Any) -> dict | None:
        """The CSV forms: ``"7 8 1 ..."`` (op_idx_list), ``"k5_e6 skip ..."`` (arch_str), or a list."""
        if isinstance(data, (str, list, tuple)):
            return {"op_idx_list": self._indices(data)}
        return None

    def _to_fields(self, data: dict) -> dict:
        if isinstance(data.get("op_idx_list"), (str, list, tuple)):  # CSV cell or op names, in a dict
            return {**data, "op_idx_list": self._indices(data["op_idx_list"])}
        return data

    def _indices(self, data: Any) -> list[Any]:
        tokens = [t for t in re.split(r"[\s,\[\]]+", data.strip()) if t] if isinstance(data, str) else list(data)
        indices = []
        for token in tokens:
            index = _parse_token(token)
            if index is None:
                raise InvalidArchError(
                    f"{self.name} arch: 'op_idx_list' item {token!r} is neither an index 0-{len(OPS) - 1} "
                    f"nor an op name ({', '.join(OPS)})"
                )
            indices.append(index)
        return indices

    def op_names(self, arch: Any) -> list[str]:
        """The 22 block names (the CSV's ``arch_str`` column, split)."""
        return [OPS[i] for i in self.decode(arch)["op_idx_list"]]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        _, _, strides, stem_stride, head_channels = DATASETS[self.options["dataset"]]

        def bn(x):
            return layers.BatchNormalization(epsilon=BN_EPSILON)(x)

        def conv_norm(x, filters, kernel, stride=1, relu=True, groups=1):
            if stride != 1 and kernel > 1:  # PyTorch pads symmetrically
                x = layers.ZeroPadding2D(kernel // 2)(x)
                x = layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, groups=groups)(x)
            else:
                x = layers.Conv2D(
                    filters, kernel, strides=stride, padding="same" if kernel > 1 else "valid",
                    use_bias=False, groups=groups,
                )(x)
            x = bn(x)
            return layers.ReLU()(x) if relu else x

        def block(x, op, c_out, stride):
            c_in = int(x.shape[-1])
            spec = op_spec(op)
            if spec is None:  # skip
                if stride == 1 and c_in == c_out:
                    return x
                return conv_norm(x, c_out, 1, stride)
            kernel, expansion, groups = spec
            identity = x
            x = conv_norm(x, c_in * expansion, 1, groups=groups)
            if groups > 1:
                x = _blocks.channel_shuffle(keras, x, groups)
            pad = -(-(kernel - stride) // 2)  # the reference's ceil((k - s) / 2)
            if stride == 1:
                x = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False)(x)
            else:
                x = layers.ZeroPadding2D(pad)(x)
                x = layers.DepthwiseConv2D(kernel, strides=stride, padding="valid", use_bias=False)(x)
            x = layers.ReLU()(bn(x))
            x = conv_norm(x, c_out, 1, relu=False, groups=groups)
            if c_in == c_out and stride == 1:
                x = layers.Add()([identity, x])
            return x

        x = conv_norm(inputs, STEM_CHANNELS, 3, stem_stride)
        ops = iter(arch["op_idx_list"])
        for stage, count in enumerate(LAYERS_PER_STAGE):
            for i in range(count):
                x = block(x, OPS[next(ops)], CHANNELS[stage], strides[stage] if i == 0 else 1)
        x = conv_norm(x, head_channels, 1)
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(self.options["num_classes"], name="logits")(x)
