"""End-to-end tests of issue 6's server additions: /metrics latency histograms with SGLang's
names, batch prompts on /generate and /v1/completions, and logit_bias. Reuses the server fixture
and helpers of test_server.py (same binary, model and API key)."""
import json
import math
import re
import threading

import pytest
import requests

from test_server import (API_KEY, PROMPT, QUICK, assert_idle, client, get,  # noqa: F401
                         post, server)

HISTS = ("sglang:time_to_first_token_seconds", "sglang:inter_token_latency_seconds",
         "sglang:e2e_request_latency_seconds")
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}, checking every sample line parses."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, "bad sample line: %r" % line
        labels = dict(kv.split("=", 1) for kv in m.group(2).split(","))
        labels = {k: json.loads(v) for k, v in labels.items()}
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def hist(samples, name):
    buckets = sorted(((math.inf if dict(l)["le"] == "+Inf" else float(dict(l)["le"])), v)
                     for (n, l), v in samples.items() if n == name + "_bucket")
    count = [v for (n, l), v in samples.items() if n == name + "_count"]
    total = [v for (n, l), v in samples.items() if n == name + "_sum"]
    assert len(count) == 1 and len(total) == 1, name
    return buckets, count[0], total[0]


def metrics(server):
    r = get(server, "/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return r.text, parse_metrics(r.text)


def finished(server):
    return assert_idle(server)["internal_states"][0]["requests_finished"]


# ---------- /metrics ----------

def test_metrics_histograms(server):
    assert_idle(server)
    _, before = metrics(server)
    n_req, max_new = 3, 5
    for i in range(n_req):
        r = post(server, "/generate", {"text": PROMPT + " %d" % i, "sampling_params": {
            "max_new_tokens": max_new, "temperature": 0, "ignore_eos": True}})
        assert r.status_code == 200, r.text
    done = finished(server)
    text, after = metrics(server)
    for name in HISTS:
        assert "# TYPE %s histogram" % name in text
        b0, c0, s0 = hist(before, name)
        b1, c1, s1 = hist(after, name)
        les = [le for le, _ in b1]
        assert les == sorted(les) and les[-1] == math.inf and len(les) > 10
        vals = [v for _, v in b1]
        assert all(a <= b for a, b in zip(vals, vals[1:])), "buckets not cumulative: %r" % vals
        assert vals[-1] == c1 and s1 >= s0
        for (_, l), _v in ((k, v) for k, v in after.items() if k[0] == name + "_bucket"):
            assert dict(l)["model_name"] == "smollm2"
        delta = c1 - c0
        if name == "sglang:inter_token_latency_seconds":
            assert delta == n_req * (max_new - 1), (name, delta)
        else:
            assert delta == n_req, (name, delta)
    # every finished request is in the end-to-end histogram, and nothing else is
    _, c_e2e, _ = hist(after, "sglang:e2e_request_latency_seconds")
    assert c_e2e == done
    model = frozenset({("model_name", "smollm2")})
    for name in ("sglang:prompt_tokens_total", "sglang:generation_tokens_total",
                 "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage",
                 "sglang:cache_hit_rate", "sglang:gen_throughput", "sglang:num_requests_total"):
        assert (name, model) in after, name
    assert after[("sglang:num_requests_total", model)] == done
    assert after[("sglang:generation_tokens_total", model)] >= \
        before[("sglang:generation_tokens_total", model)] + n_req * max_new


# ---------- batch prompts ----------

def greedy(server, text, n=6):
    r = post(server, "/generate", {"text": text, "sampling_params": {
        "max_new_tokens": n, "temperature": 0, "ignore_eos": True}})
    assert r.status_code == 200, r.text
    return r.json()


def test_generate_batch_text_and_ids(server):
    prompts = [PROMPT, "Once upon a time", "1, 2, 3, 4,"]
    singles = [greedy(server, p) for p in prompts]
    r = post(server, "/generate", {"text": prompts, "sampling_params": {
        "max_new_tokens": 6, "temperature": 0, "ignore_eos": True}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out, list) and len(out) == 3
    for single, item in zip(singles, out):
        assert item["output_ids"] == single["output_ids"]
        assert item["text"] == single["text"]
        assert item["meta_info"]["prompt_tokens"] == single["meta_info"]["prompt_tokens"]
    ids = [post(server, "/tokenize", {"prompt": p}).json()["tokens"] for p in prompts]
    r = post(server, "/generate", {"input_ids": ids, "sampling_params": [
        {"max_new_tokens": 6, "temperature": 0, "ignore_eos": True},
        {"max_new_tokens": 2, "temperature": 0, "ignore_eos": True},
        {"max_new_tokens": 4, "temperature": 0, "ignore_eos": True}]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [len(o["output_ids"]) for o in out] == [6, 2, 4]
    for single, item, n in zip(singles, out, (6, 2, 4)):
        assert item["output_ids"] == single["output_ids"][:n]
    assert len({o["meta_info"]["id"] for o in out}) == 3
    assert_idle(server)


def test_generate_batch_stream(server):
    prompts = [PROMPT, "Once upon a time"]
    want = post(server, "/generate", {"text": prompts, "sampling_params": {
        "max_new_tokens": 5, "temperature": 0, "ignore_eos": True}}).json()
    r = post(server, "/generate", {"text": prompts, "stream": True, "sampling_params": {
        "max_new_tokens": 5, "temperature": 0, "ignore_eos": True}}, stream=True)
    assert r.status_code == 200
    events = [l[6:] for l in r.iter_lines(decode_unicode=True) if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = {}
    for e in events[:-1]:
        j = json.loads(e)
        last[j["index"]] = j
    assert sorted(last) == [0, 1]
    for i in range(2):
        assert last[i]["output_ids"] == want[i]["output_ids"]
        assert last[i]["meta_info"]["finish_reason"]["type"] == "length"


def test_completions_batch_indices(server, client):
    prompts = [PROMPT, "Once upon a time"]
    singles = [client.completions.create(model="smollm2", prompt=p, max_tokens=5,
                                         temperature=0).choices[0].text for p in prompts]
    r = client.completions.create(model="smollm2", prompt=prompts, max_tokens=5, temperature=0,
                                  n=2)
    assert len(r.choices) == 4
    by_index = {c.index: c.text for c in r.choices}
    assert sorted(by_index) == [0, 1, 2, 3]
    # OpenAI numbering: index = prompt * n + j
    assert by_index[0] == by_index[1] == singles[0]
    assert by_index[2] == by_index[3] == singles[1]
    ids = [post(server, "/tokenize", {"prompt": p}).json()["tokens"] for p in prompts]
    r2 = client.completions.create(model="smollm2", prompt=ids, max_tokens=5, temperature=0)
    assert [c.text for c in sorted(r2.choices, key=lambda c: c.index)] == singles
    assert r2.usage.prompt_tokens == sum(len(x) for x in ids)
    assert 2 <= r2.usage.completion_tokens <= 10
    # a single token-id list is one prompt
    r3 = client.completions.create(model="smollm2", prompt=ids[1], max_tokens=5, temperature=0)
    assert len(r3.choices) == 1 and r3.choices[0].text == singles[1]
    # streaming: chunks carry their choice index
    stream = client.completions.create(model="smollm2", prompt=prompts, max_tokens=5,
                                       temperature=0, stream=True)
    text = {}
    for chunk in stream:
        for c in chunk.choices:
            text[c.index] = text.get(c.index, "") + c.text
    assert text == {0: singles[0], 1: singles[1]}
    assert_idle(server)


BATCH_ERRORS = [
    ("/generate", {"text": []}, "'text' is an empty list"),
    ("/generate", {"text": ["hi", ""]}, "'text'[1] is empty"),
    ("/generate", {"text": ["hi", 5]}, "'text'[1]"),
    ("/generate", {"text": ["hi"] * 257}, "limit is 256"),
    ("/generate", {"input_ids": [[5, 6], [7, 49152]]}, "'input_ids[1]'[1]"),
    ("/generate", {"input_ids": [[5, 6], 7]}, "'input_ids[1]'"),
    ("/generate", {"input_ids": [[5, 6], []]}, "'input_ids[1]' is empty"),
    ("/generate", {"text": ["a", "b"], "sampling_params": [{}]}, "1 entries for 2 prompts"),
    ("/generate", {"text": ["a", "b"], "sampling_params": [{}, {"temperature": -1}]},
     "'sampling_params'[1]: 'temperature'"),
    ("/generate", {"text": "a", "sampling_params": [{}]}, "sampling_params"),
    ("/v1/completions", {"prompt": ["hi", 3]}, "'prompt'[1]"),
    ("/v1/completions", {"prompt": ["hi", ""]}, "'prompt'[1] is empty"),
    ("/v1/completions", {"prompt": [[1, 2], [3, -1]]}, "'prompt[1]'[1]"),
    ("/v1/completions", {"prompt": ["x"] * 300}, "limit is 256"),
    ("/v1/completions", {"prompt": ["x"] * 20, "n": 16}, "the limit is 256"),
]

BIAS_ERRORS = [
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"abc": 1}}, "logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"1.5": 1}}, "logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"-3": 1}}, "logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"": 1}}, "logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"49152": 1}}, "vocabulary"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"99999999999": 1}}, "logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"5": 101}}, "[-100, 100]"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"5": "1"}}, "[-100, 100]"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "logit_bias": {"5": float("nan")}}, ""),  # not JSON: 400
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "logit_bias": {"5": float("inf")}}, "logit_bias"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "logit_bias": [5]}, "logit_bias"),
    ("/generate", {"text": "hi", "sampling_params": {"logit_bias": {"x": 1}}}, "logit_bias"),
    ("/generate", {"text": "hi", "sampling_params": {"logit_bias": {"5": -1e309}}},
     "logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {str(i): 1 for i in range(1025)}},
     "1024"),
]


@pytest.mark.parametrize("path,body,needle", BATCH_ERRORS + BIAS_ERRORS,
                         ids=["%s:%d" % (c[0], i) for i, c in enumerate(BATCH_ERRORS + BIAS_ERRORS)])
def test_bad_batch_and_bias(server, path, body, needle):
    try:
        data = json.dumps(body, allow_nan=True)
    except ValueError:
        data = str(body)
    data = data.replace("Infinity", "1e999")  # cJSON reads 1e999 as inf
    r = post(server, path, data=data)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["code"] == 400
    assert needle in err["message"], err["message"]


def test_nul_in_text_is_refused_not_cut(server):
    """A string holding U+0000 would reach the engine cut at the NUL (the JSON library's strings
    end there): the request is refused with a message saying so, and an escaped backslash
    followed by "u0000" (no NUL) is text like any other."""
    for path, body in (("/generate", {"text": "a\u0000b", "sampling_params": {"max_new_tokens": 1}}),
                       ("/v1/completions", {"prompt": "x\u0000", "max_tokens": 1}),
                       ("/v1/chat/completions", {"messages": [{"role": "user",
                                                               "content": "\u0000hi"}],
                                                 "max_tokens": 1})):
        r = post(server, path, data=json.dumps(body))
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
        assert "U+0000" in r.json()["error"]["message"]
    r = post(server, "/generate", data=json.dumps({"text": "a\\u0000b",
                                                  "sampling_params": {"max_new_tokens": 1}}))
    assert r.status_code == 200, r.text[:200]


def test_bad_requests_leave_no_slots(server, client):
    for path, body, _ in BATCH_ERRORS + BIAS_ERRORS:
        post(server, path, data=json.dumps(body, allow_nan=True).replace("Infinity", "1e999"))
    r = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=3, temperature=0)
    assert r.choices[0].text
    info = assert_idle(server)
    assert info["internal_states"][0]["http_inflight_requests"] <= 1


# ---------- logit_bias ----------

def test_logit_bias_changes_greedy(server, client):
    base = greedy(server, PROMPT, 4)
    first = base["output_ids"][0]
    # -100 on the greedy token: another token comes out first
    j = post(server, "/generate", {"text": PROMPT, "sampling_params": {
        "max_new_tokens": 4, "temperature": 0, "ignore_eos": True,
        "logit_bias": {str(first): -100}}}).json()
    assert j["output_ids"][0] != first
    # +100 on an unlikely token: it comes out at every step
    forced = 1000 if first != 1000 else 1001
    j = post(server, "/generate", {"text": PROMPT, "sampling_params": {
        "max_new_tokens": 4, "temperature": 0, "ignore_eos": True,
        "logit_bias": {str(forced): 100}}, "return_logprob": True}).json()
    assert j["output_ids"] == [forced] * 4
    # logprobs reflect the bias (as SGLang computes them): the forced token is near-certain
    assert all(lp[0] > -0.01 for lp in j["meta_info"]["output_token_logprobs"])
    want = post(server, "/detokenize", {"tokens": [forced] * 3}).json()["text"]
    # the OpenAI routes, sampled too
    r = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=3, temperature=0.8,
                                  seed=7, logit_bias={str(forced): 100})
    assert r.choices[0].text == want
    c = client.chat.completions.create(model="smollm2", max_tokens=3, temperature=0,
                                       messages=[{"role": "user", "content": "hi"}],
                                       logit_bias={str(forced): 100})
    assert c.choices[0].message.content == want
    # an empty map changes nothing
    j = post(server, "/generate", {"text": PROMPT, "sampling_params": {
        "max_new_tokens": 4, "temperature": 0, "ignore_eos": True, "logit_bias": {}}}).json()
    assert j["output_ids"] == base["output_ids"]
    assert_idle(server)
