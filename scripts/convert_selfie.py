"""Convert MediaPipe's selfie segmentation models (.tflite) into rtseg semantic checkpoints.

The models come from the npm package ``@mediapipe/selfie_segmentation`` (Apache-2.0, Google)::

    cd /tmp && npm pack @mediapipe/selfie_segmentation && tar xzf mediapipe-selfie_segmentation-*.tgz
    pip install -e '.[convert]'            # the `tflite` flatbuffer reader (conversion time only)
    python scripts/convert_selfie.py /tmp/package --out rtseg/assets

For each of ``selfie_segmentation.tflite`` (256x256) and ``selfie_segmentation_landscape.tflite`` (144x256)
it reads the flatbuffer, walks the graph's weighted ops (CONV_2D, DEPTHWISE_CONV_2D and MediaPipe's custom
``Convolution2DTransposeBias``; their FP16 weights reach them through DEQUANTIZE ops), checks each against the
layer :meth:`rtseg.models.selfie.SelfieSegmentation.tflite_layers` lists at that position (kind, shape,
stride, SAME padding, no fused activation), copies the weights, and writes ``<name>.pt`` with
:func:`rtseg.models.zoo.save_semantic` (classes background, person; RGB in [0, 1]; the module stretches the
frame to the network size as MediaPipe does). It also writes ``<name>.layers.json``: the graph's op counts
and weight shapes, which the unit tests compare with the PyTorch module.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from rtseg.backends.base import SemanticInfo
from rtseg.models.selfie import NAMES, SIZES, SelfieSegmentation
from rtseg.models.zoo import save_semantic

MODELS = {"selfie_segmentation": "mediapipe_selfie", "selfie_segmentation_landscape": "mediapipe_selfie_landscape"}
PALETTE_BGR = ((0, 0, 0), (60, 200, 60))  # background, person (green)
TRANSPOSE_OP = "Convolution2DTransposeBias"


def _tflite():  # noqa: ANN202 - the optional flatbuffer reader
    try:
        import tflite
    except ImportError:
        sys.exit("convert_selfie needs the TFLite flatbuffer reader: pip install -e '.[convert]' (or tflite)")
    return tflite


def _op_name(tfl, model, op) -> str:  # noqa: ANN001
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == tfl.BuiltinOperator.CUSTOM:
        return code.CustomCode().decode()
    return next(k for k, v in vars(tfl.BuiltinOperator).items() if v == builtin and not k.startswith("_"))


def _array(tfl, model, graph, index: int) -> np.ndarray:  # noqa: ANN001
    """The constant tensor ``index`` as float32 (the file stores weights as FP16)."""
    tensor = graph.Tensors(index)
    dtypes = {tfl.TensorType.FLOAT16: np.float16, tfl.TensorType.FLOAT32: np.float32}
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    return np.frombuffer(data.tobytes(), dtypes[tensor.Type()]).reshape(tensor.ShapeAsNumpy()).astype(np.float32)


def read_graph(path: Path) -> dict:
    """``{"input": (h, w), "ops": Counter of op names, "layers": [(kind, weight, bias, stride, name), ...]}``.

    Weights are in PyTorch's layouts: conv (out, in, kh, kw), depthwise (C, 1, kh, kw), transposed conv
    (in, out, kh, kw).
    """
    tfl = _tflite()
    model = tfl.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    if model.SubgraphsLength() != 1 or graph.InputsLength() != 1 or graph.OutputsLength() != 1:
        raise ValueError(f"{path}: expected one subgraph with one input and one output")
    dequantized = {}  # DEQUANTIZE output tensor -> its FP16 constant
    ops: Counter[str] = Counter()
    layers = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        name = _op_name(tfl, model, op)
        ops[name] += 1
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        if name == "DEQUANTIZE":
            dequantized[outs[0]] = ins[0]
            continue
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", TRANSPOSE_OP):
            continue
        w, b = (_array(tfl, model, graph, dequantized.get(i, i)) for i in ins[1:3])
        if name == TRANSPOSE_OP:  # custom options: a raw TfLiteTransposeConvParams {padding, stride_w, stride_h}
            padding, stride_w, stride_h = (int(v) for v in np.frombuffer(op.CustomOptionsAsNumpy().tobytes(), "<i4"))
            same, act, kind = padding == 1, 0, "transpose"  # kTfLitePaddingSame
            w = w.transpose(3, 0, 1, 2)  # (out, kh, kw, in) -> (in, out, kh, kw)
        else:
            opts = tfl.Conv2DOptions() if name == "CONV_2D" else tfl.DepthwiseConv2DOptions()
            table = op.BuiltinOptions()
            opts.Init(table.Bytes, table.Pos)
            stride_w, stride_h = opts.StrideW(), opts.StrideH()
            same, act = opts.Padding() == tfl.Padding.SAME, opts.FusedActivationFunction()
            if opts.DilationWFactor() != 1 or opts.DilationHFactor() != 1:
                raise ValueError(f"{path}: op {k} is dilated; SelfieSegmentation has no dilated layer")
            kind = "conv" if name == "CONV_2D" else "depthwise"
            w = w.transpose(0, 3, 1, 2) if kind == "conv" else w.transpose(3, 0, 1, 2)  # NHWC kernels -> NCHW
        same = same or (w.shape[2:] == (1, 1) and stride_h == 1)  # a 1x1 conv pads nothing either way
        if not same or act != 0 or stride_w != stride_h:
            raise ValueError(f"{path}: op {k} ({name}) has padding SAME={same}, fused activation {act}, "
                             f"stride {stride_h}x{stride_w}; SelfieSegmentation expects SAME, none, square")
        layers.append((kind, w, b, stride_h, graph.Tensors(outs[0]).Name().decode()))
    shape = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()
    return {"input": (int(shape[1]), int(shape[2])), "ops": ops, "layers": layers}


def load_into(net: SelfieSegmentation, layers: list) -> None:
    """Copy the graph's weights into ``net``, checking each layer's kind, shapes and stride."""
    targets = net.tflite_layers()
    if len(targets) != len(layers):
        raise ValueError(f"the graph has {len(layers)} weighted ops, SelfieSegmentation {len(targets)}")
    for i, ((kind, module), (got_kind, w, b, stride, name)) in enumerate(zip(targets, layers)):
        if kind != got_kind or tuple(module.weight.shape) != w.shape or tuple(module.bias.shape) != b.shape \
                or module.stride[0] != stride:
            raise ValueError(f"layer {i} ({name}): graph has {got_kind} {w.shape} stride {stride}, module has "
                             f"{kind} {tuple(module.weight.shape)} stride {module.stride[0]}")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(w))
            module.bias.copy_(torch.from_numpy(b))


def convert(path: Path, out_dir: Path) -> Path:
    """Convert one ``.tflite`` into ``out_dir/<stem>.pt`` (and ``<stem>.layers.json``)."""
    arch = MODELS.get(path.stem)
    if arch is None:
        raise ValueError(f"{path.name}: expected one of {', '.join(m + '.tflite' for m in MODELS)}")
    graph = read_graph(path)
    if graph["input"] != SIZES[arch]:
        raise ValueError(f"{path.name}: input {graph['input']}, expected {SIZES[arch]}")
    net = SelfieSegmentation(SIZES[arch])
    load_into(net, graph["layers"])
    info = SemanticInfo(names=NAMES, palette_bgr=PALETTE_BGR, imgsz=SIZES[arch], mean_rgb=(0.0, 0.0, 0.0),
                        std_rgb=(1.0, 1.0, 1.0), arch=arch, stride=1, dynamic=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = save_semantic(out_dir / f"{path.stem}.pt", net.eval(), info)
    summary = {"source": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
               "input_hw": list(graph["input"]), "ops": dict(sorted(graph["ops"].items())),
               "layers": [[kind, list(w.shape), stride] for kind, w, _, stride, _ in graph["layers"]]}
    (out_dir / f"{path.stem}.layers.json").write_text(json.dumps(summary, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the unpacked npm package folder, or .tflite files",
                        nargs="+")
    parser.add_argument("--out", type=Path, default=Path("rtseg/assets"), help="output folder")
    args = parser.parse_args(argv)
    paths: list[Path] = []
    for p in args.source:
        paths += [p / f"{m}.tflite" for m in MODELS] if p.is_dir() else [p]
    for path in paths:
        out = convert(path, args.out)
        print(f"{path} -> {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
