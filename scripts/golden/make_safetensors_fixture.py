#!/usr/bin/env python3
"""Writes tests/golden/st_fixture.safetensors with the official `safetensors` library (torch
front end) and tests/golden/st_fixture.tsv, a manifest of what sglc's reader must find in it:
one line per tensor `name dtype shape nbytes first last` (shape comma-separated, "" for 0-d;
first/last are the first and last elements in row-major order, floats as Python's shortest
round-trip repr, so C's strtod gives back the exact value), and one `@meta key value` line per
__metadata__ entry. Run with the reference venv: /tmp/hfvenv/bin/python scripts/golden/make_safetensors_fixture.py
"""
import os
import sys

import torch
from safetensors.torch import save_file
import safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden")

DTYPE_NAMES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32",
    torch.int64: "I64", torch.float64: "F64", torch.uint16: "U16", torch.uint32: "U32",
    torch.uint64: "U64",
}


def main():
    g = torch.Generator().manual_seed(1234)
    tensors = {
        "model.embed.weight": (torch.randn(16, 24, generator=g) * 3).to(torch.bfloat16),
        "model.layers.0.attn.q.weight": torch.randn(8, 12, generator=g).to(torch.float16),
        "model.layers.0.norm.weight": torch.linspace(-2.5, 7.25, 37, dtype=torch.float32),
        "model.layers.0.norm.bias": torch.randn(3, 5, 7, generator=g, dtype=torch.float32),
        "positions": torch.tensor([-(2**62), -1, 0, 1, 2**40 + 7, 2**63 - 1], dtype=torch.int64),
        "tokens.i32": torch.arange(-50, 50, 3, dtype=torch.int32),
        "q.int8": torch.tensor([-128, -1, 0, 1, 127, 5, -7], dtype=torch.int8),
        "bytes.u8": torch.arange(0, 250, 7, dtype=torch.uint8),
        "mask": torch.tensor([True, False, False, True, True], dtype=torch.bool),
        "short.i16": torch.tensor([[-32768, 12345], [0, 32767]], dtype=torch.int16),
        "scale": torch.tensor(0.1, dtype=torch.float64),  # 0-d
        "wide.f64": torch.tensor([1e-300, -2.5, 3.141592653589793], dtype=torch.float64),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    meta = {"format": "pt", "producer": "safetensors " + safetensors.__version__}
    st_path = os.path.join(OUT, "st_fixture.safetensors")
    save_file(tensors, st_path, metadata=meta)
    assert os.path.getsize(st_path) < 20000, os.path.getsize(st_path)

    lines = ["# written by scripts/golden/make_safetensors_fixture.py with safetensors "
             + safetensors.__version__ + " and torch " + torch.__version__,
             "# name\tdtype\tshape\tnbytes\tfirst\tlast"]
    for name in sorted(tensors):
        t = tensors[name]
        flat = t.reshape(-1)
        nbytes = t.numel() * t.element_size()
        if t.numel():
            conv = float if t.is_floating_point() else int
            first, last = conv(flat[0].item()), conv(flat[-1].item())
            first, last = repr(first), repr(last)
        else:
            first = last = "-"
        shape = ",".join(str(d) for d in t.shape)
        lines.append("\t".join([name, DTYPE_NAMES[t.dtype], shape, str(nbytes), first, last]))
    for k in sorted(meta):
        lines.append("@meta\t%s\t%s" % (k, meta[k]))
    with open(os.path.join(OUT, "st_fixture.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", st_path, os.path.getsize(st_path), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
