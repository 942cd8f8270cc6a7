#!/usr/bin/env python3
"""Writes a bfloat16 copy of a float32 Hugging Face folder (the default model's converted folder,
models/SmolLM2-135M-Instruct-hf), for the bf16 -> mlx_q4 memory figures in BENCHMARKS.md.

numpy has no bfloat16, so values are rounded to nearest-even on their uint32 bits (what
torch's .to(torch.bfloat16) does) and the safetensors file is written directly: an 8-byte header
length, the JSON header, then the tensors back to back.
Usage: .venv-convert/bin/python bench/make_bf16_folder.py IN_DIR OUT_DIR
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
from safetensors.numpy import load_file


def to_bf16_bits(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = to_bf16_bits(tensors[name]).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    for fn in os.listdir(src):
        if fn != "model.safetensors":
            shutil.copy(os.path.join(src, fn), os.path.join(dst, fn))
    cfg_path = os.path.join(dst, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["torch_dtype"] = "bfloat16"
    json.dump(cfg, open(cfg_path, "w"), indent=2)


if __name__ == "__main__":
    main()
