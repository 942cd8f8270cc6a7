"""Prompt logprobs (/generate's logprob_start_len, OpenAI echo + logprobs), token_ids_logprob,
return_text_in_logprobs and /v1/score.

The reference for prompt logprobs is llama.cpp: tests/golden/ppl_smollm2.txt holds its mean NLL
of every 512-token chunk of tests/golden/ppl_text.txt on the same GGUF
(scripts/golden/make_ppl_golden.py, llama-cpp-python); sglc's prompt logprobs of the same chunks
must give the same NLL within the agreement of the two CPU kernels (BENCHMARKS.md: 0.15 % in
perplexity)."""
import math
import os

import openai
import pytest
import requests

from test_server import QUICK, ROOT, Server


@pytest.fixture(scope="module")
def server():
    s = Server(["--max-running-requests", "64"])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)


def generate(server, body):
    r = requests.post(server.url + "/generate", json=body, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def ppl_golden():
    g = {"chunk_nll": {}}
    with open(os.path.join(ROOT, "tests", "golden", "ppl_smollm2.txt")) as f:
        for line in f:
            if line.startswith("#"):
                continue
            k, *v = line.split()
            if k == "chunk_nll":
                g["chunk_nll"][int(v[0])] = float(v[1])
            elif k == "ids":
                g["ids"] = [int(x) for x in v]
            elif k == "chunk":
                g["chunk"] = int(v[0])
    return g


def test_prompt_logprobs_match_llamacpp_perplexity(server):
    g = ppl_golden()
    n = g["chunk"]
    chunks = sorted(g["chunk_nll"])[:1 if QUICK else None]
    for i in chunks:
        ids = g["ids"][i * n:(i + 1) * n]
        j = generate(server, {"input_ids": ids, "return_logprob": True, "logprob_start_len": 0,
                              "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
        lps = j["meta_info"]["input_token_logprobs"]
        assert [t[1] for t in lps] == ids
        assert lps[0][0] is None  # the first token has no context
        nll = -sum(t[0] for t in lps[1:]) / (len(lps) - 1)
        want = g["chunk_nll"][i]
        assert abs(nll - want) / want < 0.005, (i, nll, want)


def server_device(server):
    """The device the server runs on, from /get_server_info."""
    return requests.get(server.url + "/get_server_info", timeout=10).json().get("device", "cpu")


def test_prompt_logprobs_agree_with_output_logprobs(server):
    """The logprob of prompt token k from a prompt row equals the logprob of the same token as
    the next token of prompt[:k] (token_ids_logprob on the sampling row): two code paths."""
    text = "The quick brown fox jumps over the lazy dog because it wants to"
    j = generate(server, {"text": text, "return_logprob": True, "logprob_start_len": 3,
                          "top_logprobs_num": 3, "return_text_in_logprobs": True,
                          "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
    lps = j["meta_info"]["input_token_logprobs"]
    tops = j["meta_info"]["input_top_logprobs"]
    ids = requests.post(server.url + "/tokenize", json={"prompt": text}, timeout=60).json()
    ids = ids.get("tokens", ids.get("input_ids"))
    assert [t[1] for t in lps] == ids[3:]
    assert all(isinstance(t[2], str) for t in lps)  # return_text_in_logprobs
    for k in (3, 6, len(ids) - 1):
        ref = generate(server, {"input_ids": ids[:k], "return_logprob": True,
                                "token_ids_logprob": [ids[k]],
                                "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
        want = ref["meta_info"]["output_token_ids_logprobs"][0][0]
        assert want[1] == ids[k]
        # the CPU's kernels give both paths the same sums (2e-3 covers the prompt row's log-sum
        # over the vocabulary); a GPU computes a prompt row in the prefill's f16 GEMM and the
        # other in the f32 matrix-vector kernel
        tol = 2e-2 if server_device(server) == "cuda" else 2e-3
        assert abs(lps[k - 3][0] - want[0]) < tol, (k, lps[k - 3], want)
        # the top alternatives are sorted and the token's own logprob is not above the best
        t = tops[k - 3]
        assert len(t) == 3 and t[0][0] >= t[1][0] >= t[2][0] and t[0][0] >= lps[k - 3][0] - 1e-6


def test_echo_with_logprobs(client, server):
    prompt = "The capital of France is"
    r = client.completions.create(model="m", prompt=prompt, max_tokens=4, temperature=0,
                                  echo=True, logprobs=2)
    ch = r.choices[0]
    lp = ch.logprobs
    assert ch.text.startswith(prompt)
    assert "".join(lp.tokens) == ch.text
    n_prompt = r.usage.prompt_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(isinstance(x, float) for x in lp.token_logprobs[1:])
    assert len(lp.tokens) == n_prompt + r.usage.completion_tokens
    native = generate(server, {"text": prompt, "return_logprob": True, "logprob_start_len": 0,
                               "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
    want = [t[0] for t in native["meta_info"]["input_token_logprobs"]]
    assert all(abs(a - b) < 1e-4 for a, b in zip(lp.token_logprobs[1:n_prompt], want[1:]))


def test_streamed_n2_logprobs_in_every_chunk(client):
    n_chunks = 0
    for ch in client.completions.create(model="m", prompt="Once upon a time", max_tokens=6,
                                        n=2, logprobs=1, stream=True, temperature=0.8, seed=1):
        for c in ch.choices:
            n_chunks += 1
            assert c.logprobs is not None
            assert len(c.logprobs.tokens) == len(c.logprobs.token_logprobs)
    assert n_chunks >= 12


def test_score(server):
    body = {"query": "Is Paris the capital of France? Answer:", "items": [" Yes", " No"],
            "label_token_ids": [7042, 42, 105]}
    r = requests.post(server.url + "/v1/score", json=dict(body, apply_softmax=True), timeout=120)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "scoring" and len(j["scores"]) == 2
    for row in j["scores"]:
        assert len(row) == 3 and abs(sum(row) - 1) < 1e-6
    raw = requests.post(server.url + "/v1/score", json=body, timeout=120).json()["scores"]
    # without softmax: the model's own probabilities, as /generate reports them
    ref = generate(server, {"text": body["query"] + body["items"][1], "return_logprob": True,
                            "token_ids_logprob": body["label_token_ids"],
                            "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
    want = [math.exp(t[0]) for t in ref["meta_info"]["output_token_ids_logprobs"][0]]
    assert all(abs(a - b) < 1e-6 for a, b in zip(raw[1], want)), (raw[1], want)
    for bad, needle in (({"items": []}, "items"), ({"label_token_ids": [10 ** 9]}, "label"),
                        ({"items": [[1, 2]]}, "same kind")):
        r = requests.post(server.url + "/v1/score", json=dict(body, **bad), timeout=60)
        assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text
