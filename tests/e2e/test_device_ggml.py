"""`sglc serve --device cpu-ggml`: the server computing with llama.cpp's CPU arithmetic returns
llama.cpp's greedy tokens (tests/golden/greedy_chat50.tsv and greedy_long.tsv, made by
scripts/golden/make_greedy_golden.py and make_greedy_long_golden.py) through the native
/generate API. One request at a time
and no prefix reuse, so each request is computed as llama.cpp computes it (prompt in one batch,
then one token per step)."""
import os
import subprocess

import pytest
import requests

from test_server import BINARY, QUICK, ROOT, Server

GOLDEN = os.path.join(ROOT, "tests", "golden")


def golden_rows(name, n):
    rows = []
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            rows.append(([int(t) for t in cols[1].split()], [int(t) for t in cols[2].split()]))
            if len(rows) == n:
                break
    return rows


@pytest.fixture(scope="module")
def ggml_server():
    s = Server(["--device", "cpu-ggml", "--disable-radix-cache", "--api-key", "k"])
    yield s
    assert s.stop() == 0


# greedy_long.tsv: prompts of 513, 700 and 1100 tokens, which llama.cpp evaluates in 512-token
# micro-batches (cpu-ggml's default --chunked-prefill-size is 512 for that reason)
@pytest.mark.parametrize("golden,n", [("greedy_chat50.tsv", 3 if QUICK else 10),
                                      ("greedy_long.tsv", 1 if QUICK else 3)])
def test_generate_equals_llamacpp(ggml_server, golden, n):
    for prompt, want in golden_rows(golden, n):
        r = requests.post(ggml_server.url + "/generate", headers={"Authorization": "Bearer k"},
                          timeout=120, json={
                              "input_ids": prompt,
                              "sampling_params": {"temperature": 0, "max_new_tokens": len(want),
                                                  "ignore_eos": True}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["output_ids"] == want, body


def test_unknown_device_is_one_clear_line():
    p = subprocess.run([BINARY, "serve", "--device", "tpu"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "unknown device 'tpu'" in p.stderr
