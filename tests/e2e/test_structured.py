"""Structured output, reasoning and tool calls through the official `openai` client and raw HTTP.

Every constrained answer is checked by an independent reference: JSON answers by `jsonschema`
(with its format checker), regex answers by Python's `re.fullmatch`, EBNF answers by the
hand-written recognizers of scripts/golden/make_grammar_golden.py. The schemas and regexes are
the grammar fixtures' (tests/golden/grammar/, 65 schemas and 40 regexes, Unicode among them).

The default model (SmolLM2-135M-Instruct) was not trained on <think> blocks or tool calls, so the
reasoning and tool-call parsers are driven by answers a regex constraint makes it write in those
formats; tool_choice "required" and a named function are enforced by the grammar engine itself.
The server uses the Qwen2.5 chat template (same ChatML tokens as SmolLM2), which renders tools."""
import concurrent.futures
import importlib.util
import json
import os
import re

import jsonschema
import openai
import pytest
import requests

from test_server import API_KEY, QUICK, ROOT, Server

GOLDEN = os.path.join(ROOT, "tests", "golden", "grammar")
QWEN25 = os.path.join(ROOT, "tests", "golden", "chat_templates", "Qwen-Qwen2.5-7B-Instruct.jinja")


def load(name):
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as f:
        return json.load(f)


def recognizers():
    spec = importlib.util.spec_from_file_location(
        "make_grammar_golden", os.path.join(ROOT, "scripts", "golden", "make_grammar_golden.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [(g, f) for g, f, _ in mod.EBNF]


@pytest.fixture(scope="module")
def server():
    s = Server(["--api-key", API_KEY, "--reasoning-parser", "qwen3", "--tool-call-parser",
                "qwen25", "--chat-template", QWEN25])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=300)


def generate(server, body):
    return requests.post(server.url + "/generate", json=body, timeout=300,
                         headers={"Authorization": "Bearer " + API_KEY})


def pick(items, quick_n):
    return items[:quick_n] if QUICK else items


def run_parallel(fn, items, workers=16):
    """Requests in flight together: continuous batching with a mix of constraints."""
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))


# ---------- JSON Schema ----------

def test_response_format_json_schema_every_fixture_schema(client):
    """Each fixture schema as OpenAI response_format, 16 requests in flight. The prompt shows the
    schema (as users do) and a frequency penalty keeps the 135M model from repeating itself; an
    answer cut by max_tokens is reported as finish_reason "length" (a prefix, as in OpenAI and
    SGLang), and on unbounded recursive schemas this small model can run on: at most 2 of 65
    may, every finished answer must validate."""
    schemas = pick([c["schema"] for c in load("json_schema.json")], 8)
    assert len(schemas) >= (8 if QUICK else 50)
    checker = jsonschema.FormatChecker()

    def one(item):
        k, schema = item
        r = client.chat.completions.create(
            model="smollm2", max_tokens=1024, temperature=0 if k % 2 == 0 else 0.8, seed=k,
            frequency_penalty=0.5,
            messages=[{"role": "user", "content": "Give one short JSON example of this JSON "
                                                  "Schema: " + json.dumps(schema)}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "s%d" % k, "schema": schema, "strict": True}})
        return schema, r.choices[0]

    cut = []
    for schema, ch in run_parallel(one, list(enumerate(schemas))):
        if ch.finish_reason == "length":
            cut.append((schema, ch.message.content[:80]))
            continue
        assert ch.finish_reason == "stop", (schema, ch.message.content)
        value = json.loads(ch.message.content)
        jsonschema.validate(value, schema, format_checker=checker)
    assert len(cut) <= (0 if QUICK else 2), cut


def test_json_object_and_native_json_schema(client, server):
    r = client.chat.completions.create(
        model="smollm2", max_tokens=200, temperature=0,
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],
        response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                               "legs": {"type": "integer", "minimum": 0,
                                                        "maximum": 8}},
              "required": ["name", "legs"]}
    # /generate takes the schema as a string (SGLang's sampling_params.json_schema), n > 1 via
    # the OpenAI completions endpoint's extra parameter
    g = generate(server, {"text": "A cat in JSON:", "sampling_params": {
        "max_new_tokens": 64, "temperature": 0, "json_schema": json.dumps(schema)}})
    assert g.status_code == 200, g.text
    jsonschema.validate(json.loads(g.json()["text"]), schema)
    c = client.completions.create(model="smollm2", prompt="An animal in JSON:", max_tokens=64,
                                  n=3, temperature=1.0, seed=5, extra_body={"json_schema": schema})
    assert len(c.choices) == 3
    for ch in c.choices:
        assert ch.finish_reason == "stop"
        jsonschema.validate(json.loads(ch.text), schema)


# ---------- regex and EBNF ----------

def test_regex_every_fixture_regex(client):
    """Each fixture regex through chat completions (where the model ends its turn), 16 in
    flight; answers cut by max_tokens (unbounded repetition the 135M model does not end) are
    counted, every finished answer must fullmatch."""
    regexes = pick([c["regex"] for c in load("regex.json")], 6)
    assert len(regexes) >= (6 if QUICK else 30)

    def one(item):
        k, rx = item
        r = client.chat.completions.create(
            model="smollm2", max_tokens=128, temperature=0 if k % 2 else 0.7, seed=k,
            frequency_penalty=0.5, extra_body={"regex": rx},
            messages=[{"role": "user", "content": "Reply with one short string that matches the "
                                                  "regular expression " + rx}])
        return rx, r.choices[0]

    cut = []
    for rx, ch in run_parallel(one, list(enumerate(regexes))):
        if ch.finish_reason == "length":
            cut.append((rx, ch.message.content[:60]))
            continue
        assert ch.finish_reason == "stop", (rx, ch)
        assert re.fullmatch(rx, ch.message.content, flags=re.ASCII), (rx, ch.message.content)
    # seen: 3 of 40 cut ([α-ω]+, [\u00e0-\u00ff]+, Title Case words), never a finished miss
    assert len(cut) <= (0 if QUICK else 4), cut


def test_regex_unicode_through_openai_client(client):
    rx = "(héllo|привет|你好|😀) [α-ω]{2,6}"
    for stream in (False, True):
        r = client.completions.create(model="smollm2", prompt="Greeting:", max_tokens=32,
                                      temperature=0, stream=stream, extra_body={"regex": rx})
        text = "".join(ch.choices[0].text for ch in r) if stream else r.choices[0].text
        assert re.fullmatch(rx, text), text


def test_ebnf_every_fixture_grammar(client):
    cut = []
    for grammar, ok in recognizers():
        r = client.chat.completions.create(
            model="smollm2", max_tokens=128, temperature=0, frequency_penalty=0.5,
            extra_body={"ebnf": grammar},
            messages=[{"role": "user", "content": "Reply with one short sentence of this "
                                                  "grammar:\n" + grammar}])
        ch = r.choices[0]
        if ch.finish_reason == "length":
            cut.append((grammar, ch.message.content[:60]))
            continue
        assert ch.finish_reason == "stop", (grammar, ch)
        assert ok(ch.message.content), (grammar, ch.message.content)
    assert len(cut) <= 1, cut


@pytest.mark.parametrize("field,value,needle", [
    ("regex", "(ab", "regex"),
    ("regex", "a{5,2}", "regex"),
    ("ebnf", "root ::= missing", "missing"),
    ("ebnf", "rule ::= \"a\"", "root"),
    ("json_schema", "{\"type\": \"objecty\"}", "objecty"),
    ("json_schema", "{\"$ref\": \"#/$defs/nope\"}", "nope"),
    ("json_schema", "not json", "json_schema"),
])
def test_bad_constraints_are_400_naming_the_problem(server, field, value, needle):
    r = generate(server, {"text": "x", "sampling_params": {"max_new_tokens": 4, field: value}})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert field in msg and needle in msg, msg


def test_two_constraints_refused(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="smollm2", max_tokens=8, messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_object"}, extra_body={"regex": "a+"})
    assert "conflicts" in str(e.value)


# ---------- reasoning ----------

THINK_RX = r"<think>\n[a-z ]{5,40}\n</think>\n\n[A-Z][a-z ]{5,40}\."


def extra(msg, key):
    return (msg.model_extra or {}).get(key)


def test_reasoning_content_streamed_and_not(client):
    msgs = [{"role": "user", "content": "What is 2+2? Think first."}]
    r = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=120,
                                       temperature=0, extra_body={"regex": THINK_RX})
    m = r.choices[0].message
    raw = "<think>\n%s\n</think>\n\n%s" % (extra(m, "reasoning_content"), m.content)
    assert re.fullmatch(THINK_RX, raw), raw
    assert "<think>" not in m.content and "</think>" not in m.content
    # streamed: the deltas add up to the same two fields
    rs, cs = "", ""
    for ch in client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=120,
                                             temperature=0, stream=True,
                                             extra_body={"regex": THINK_RX}):
        d = ch.choices[0].delta
        rs += extra(d, "reasoning_content") or ""
        cs += d.content or ""
    assert (rs, cs) == (extra(m, "reasoning_content"), m.content)
    # separate_reasoning: false keeps the block in the content
    r = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=120,
                                       temperature=0, extra_body={"regex": THINK_RX,
                                                                  "separate_reasoning": False})
    assert r.choices[0].message.content == raw
    assert extra(r.choices[0].message, "reasoning_content") is None


# ---------- tool calls ----------

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 20},
            "unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["city", "unit"]}}},
    {"type": "function", "function": {
        "name": "now", "description": "The time now.",
        "parameters": {"type": "object", "properties": {}}}},
]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def check_call(call, name=None):
    fn = next(t["function"] for t in TOOLS if t["function"]["name"] == call.function.name)
    if name:
        assert call.function.name == name
    jsonschema.validate(json.loads(call.function.arguments), fn["parameters"])
    assert call.type == "function" and call.id


def test_tool_choice_required(client):
    # a frequency penalty keeps the 135M model from calling get_weather until max_tokens
    r = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                       tool_choice="required", max_tokens=400, temperature=0,
                                       frequency_penalty=0.5)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    assert ch.message.content is None and len(ch.message.tool_calls) >= 1
    for call in ch.message.tool_calls:
        check_call(call)
    # streamed: the same calls, as tool_calls deltas
    calls = {}
    for chunk in client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                                tool_choice="required", max_tokens=400,
                                                temperature=0, frequency_penalty=0.5,
                                                stream=True):
        for d in chunk.choices[0].delta.tool_calls or []:
            c = calls.setdefault(d.index, {"name": "", "arguments": ""})
            c["name"] += d.function.name or ""
            c["arguments"] += d.function.arguments or ""
        last = chunk.choices[0].finish_reason
    assert last == "tool_calls"
    assert [calls[i] for i in sorted(calls)] == [
        {"name": c.function.name, "arguments": c.function.arguments} for c in ch.message.tool_calls]


def test_tool_choice_named_function(client):
    r = client.chat.completions.create(
        model="smollm2", messages=ASK, tools=TOOLS, max_tokens=400, temperature=0.7, seed=3,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1
    check_call(calls[0], "get_weather")


def test_tool_call_parser_qwen25_on_auto(client):
    """tool_choice auto: the --tool-call-parser reads <tool_call> blocks out of the answer."""
    rx = (r'I will check\.\n<tool_call>\n\{"name": "get_weather", "arguments": \{"city": '
          r'"[A-Z][a-z]{2,8}", "unit": "[CF]"\}\}\n</tool_call>')
    r = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                       max_tokens=120, temperature=0, extra_body={"regex": rx})
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    assert ch.message.content == "I will check."
    assert len(ch.message.tool_calls) == 1
    check_call(ch.message.tool_calls[0], "get_weather")
    # without tools in the request the same answer stays text
    r = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=120,
                                       temperature=0, extra_body={"regex": rx})
    assert r.choices[0].message.tool_calls is None and "<tool_call>" in r.choices[0].message.content


def test_tools_reach_the_chat_template(client):
    plain = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=1)
    with_tools = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                                max_tokens=1)
    none = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                          tool_choice="none", max_tokens=1)
    # the Qwen2.5 template lists the tools' JSON in the system turn (about 100 tokens here)
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 50
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens


@pytest.mark.parametrize("kw,needle", [
    ({"tool_choice": "required"}, "needs 'tools'"),
    ({"tools": [{"type": "function"}]}, "'tools'[0]"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "'nope'"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
])
def test_bad_tools_are_400(client, kw, needle):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=4, **kw)
    assert needle in str(e.value)


# ---------- OpenAI API details ----------

def test_embeddings_refused_clearly(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="smollm2", input="hello")
    assert "not an embedding model" in str(e.value)


def test_echo_model_name_and_model_by_id(client):
    r = client.completions.create(model="any-name", prompt="The capital of France is",
                                  max_tokens=6, temperature=0, echo=True)
    assert r.choices[0].text.startswith("The capital of France is")
    assert len(r.choices[0].text) > len("The capital of France is")
    assert r.model == "any-name"  # the request's model, as SGLang answers
    s = "".join(c.choices[0].text for c in client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=6, temperature=0,
        echo=True, stream=True))
    assert s == r.choices[0].text
    assert client.models.retrieve("smollm2").id == "smollm2"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    # echo with logprobs: tests/e2e/test_logprobs.py


def test_continuous_usage_stats_user_metadata(client):
    chunks = list(client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Count to five."}], max_tokens=12,
        temperature=0, stream=True, user="u-1", metadata={"k": "v"},
        stream_options={"include_usage": True, "continuous_usage_stats": True}))
    with_choices = [c for c in chunks if c.choices]
    assert all(c.usage is not None for c in with_choices)
    usages = [c.usage.completion_tokens for c in with_choices]
    assert usages == sorted(usages) and usages[-1] == chunks[-1].usage.completion_tokens


def test_continue_final_message(client, server):
    msgs = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is"}]
    r = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=8,
                                       temperature=0,
                                       extra_body={"continue_final_message": True,
                                                   "add_generation_prompt": False})
    # the Qwen2.5 template's rendering of msgs, cut after the final message's text
    # (transformers' continue_final_message)
    prompt = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
              "assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
              "<|im_start|>assistant\nThe capital of France is")
    g = generate(server, {"text": prompt, "sampling_params": {"max_new_tokens": 8,
                                                              "temperature": 0}})
    assert r.choices[0].message.content == g.json()["text"]
    assert r.usage.prompt_tokens == g.json()["meta_info"]["prompt_tokens"]


@pytest.mark.parametrize("body", [
    {"return_hidden_states": True},
    {"custom_logit_processor": "x"},
])
def test_unimplemented_fields_refused_by_name(server, body):
    for path, base in (("/generate", {"text": "x", "sampling_params": {"max_new_tokens": 2}}),
                       ("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 2})):
        r = requests.post(server.url + path, json=dict(base, **body), timeout=60,
                          headers={"Authorization": "Bearer " + API_KEY})
        assert r.status_code == 400, r.text
        assert list(body)[0] in r.json()["error"]["message"]


def test_stream_interval_skip_tokenizer_init_grammar_none():
    s = Server(["--stream-interval", "4", "--skip-tokenizer-init", "--grammar-backend", "none"])
    try:
        r = requests.post(s.url + "/generate", stream=True, timeout=120, json={
            "input_ids": [1, 504, 3458, 282], "stream": True,
            "sampling_params": {"max_new_tokens": 12, "temperature": 0, "ignore_eos": True}})
        events = [json.loads(l[6:]) for l in r.iter_lines()
                  if l.startswith(b"data: ") and l != b"data: [DONE]"]
        counts = [len(e["output_ids"]) for e in events]
        # a chunk every 4 tokens, then the one that says it finished
        assert counts[:3] == [4, 8, 12] and all(c == 12 for c in counts[3:]), counts
        assert events[-1]["meta_info"]["finish_reason"]["type"] == "length"
        assert all(e["meta_info"]["finish_reason"] is None for e in events[:2])
        assert all("text" not in e for e in events)  # token ids only
        r = requests.post(s.url + "/generate", json={"text": "hi"}, timeout=60)
        assert r.status_code == 400 and "--skip-tokenizer-init" in r.json()["error"]["message"]
        r = requests.post(s.url + "/generate", json={
            "input_ids": [1, 2], "sampling_params": {"regex": "a+"}}, timeout=60)
        assert r.status_code == 400 and "--grammar-backend none" in r.json()["error"]["message"]
    finally:
        assert s.stop() == 0


def test_server_info_fields_and_sglang_error_wording(server, client):
    info = requests.get(server.url + "/get_server_info", timeout=30,
                        headers={"Authorization": "Bearer " + API_KEY}).json()
    assert info["max_total_num_tokens"] == info["internal_states"][0]["kv_pool_size"]
    model = requests.get(server.url + "/model_info", timeout=30,
                         headers={"Authorization": "Bearer " + API_KEY}).json()
    assert info["max_req_input_len"] == model["context_length"] - 1
    assert requests.get(server.url + "/server_info", timeout=30, headers={
        "Authorization": "Bearer " + API_KEY}).json()["max_total_num_tokens"] > 0
    ctx = model["context_length"]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt=[1] * (ctx + 5), max_tokens=1)
    assert "The input (%d tokens) is longer than the model's context length (%d tokens)." % (
        ctx + 5, ctx) in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="Hello", max_tokens=ctx)
    assert "Requested token count exceeds the model's maximum context length of %d tokens" % ctx \
        in str(e.value)
    r = requests.post(server.url + "/generate", data=b"x" * (9 << 20), timeout=60,
                      headers={"Authorization": "Bearer " + API_KEY})
    assert r.status_code == 413 and "Payload Too Large" in r.json()["error"]["message"]
