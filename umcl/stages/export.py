"""`umcl export --onnx`: the model for ONNX Runtime or Triton — the image encoder graph and the
findings' prompt matrix, checked against PyTorch (`umcl/onnx_export.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onnx", type=Path, required=True, metavar="DIR", help="a new directory")
    parser.add_argument("--model", default="umcl:champion", help="a model directory or umcl:<tag>")


def run(args: argparse.Namespace) -> None:
    from umcl.onnx_export import export_onnx

    report = export_onnx(args.model, args.onnx)
    checked = report["checked"]
    print(
        f"export: {report['model']} → {args.onnx} (ONNX opset {report['opset']}; checked in ONNX "
        f"Runtime {checked['onnxruntime']}: embeddings within {checked['max_abs_difference']:.1e}"
        f" of PyTorch)"
    )
