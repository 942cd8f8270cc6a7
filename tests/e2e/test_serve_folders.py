"""`sglc serve` on model folders (issue 4): the default model's Hugging Face folder quantized at
load with --quantization mlx_q4 / mlx_q8, and an already-quantized MLX folder with the flag
(ignored with one log line). Greedy text through the server must equal `sglc generate` with the
same flags, and the SGLang quantization log lines must carry the figures."""
import os
import re
import subprocess

import pytest
import requests

from test_server import BINARY, QUICK, ROOT, Server

HF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct-hf")
CHAT = "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n"


def generate(model, extra, n):
    out = subprocess.run(
        [BINARY, "generate", "--model-path", model, "--prompt", CHAT, "--max-new-tokens", str(n),
         "--temperature", "0", "--ignore-eos", *extra],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    # generate ends its output with one newline of its own
    return (out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout), out.stderr


def serve_text(server, n):
    r = requests.post(server.url + "/generate", json={
        "text": CHAT, "sampling_params": {"temperature": 0, "max_new_tokens": n,
                                          "ignore_eos": True}}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["text"]


@pytest.mark.skipif(not os.path.isdir(HF), reason="scripts/make_default_hf.sh makes the folder")
@pytest.mark.parametrize("preset", ["mlx_q4"] if QUICK else ["mlx_q4", "mlx_q8"])
def test_serve_hf_quantized_equals_generate(preset):
    n = 16
    want, gen_err = generate(HF, ["--quantization", preset], n)
    bits = preset[-1]
    assert re.search(r"Quantizing model on-the-fly: bits=%s group_size=64 \(preset=%s\)"
                     % (bits, preset), gen_err), gen_err
    s = Server(["--model-path", HF, "--quantization", preset])
    try:
        got = serve_text(s, n)
        log = s.output()
    finally:
        assert s.stop() == 0
    assert got == want
    m = re.search(r"Quantization complete in ([0-9.]+)s \u2014 weight memory: ([0-9.]+) GB -> "
                  r"([0-9.]+) GB \(([0-9.]+)% reduction\)", log)
    assert m, log
    before, after, red = float(m.group(2)), float(m.group(3)), float(m.group(4))
    # the folder is float32: q4/g64 with f32 scales and biases keeps 6 of 32 bits per weight
    assert after < before and red > (75.0 if bits == "4" else 50.0), m.group(0)


@pytest.mark.skipif(not os.path.isdir(HF), reason="scripts/make_default_hf.sh makes the folder")
def test_serve_rejects_unknown_quantization():
    out = subprocess.run([BINARY, "serve", "--model-path", HF, "--quantization", "q3_fancy"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "--quantization" in out.stderr, out.stderr
