#!/usr/bin/env python3
"""Golden chat prompts from transformers' real `apply_chat_template`, for
tests/unit/test_chat_template.c (issue 6: the C renderer must produce the same prompts).

Templates: tests/golden/chat_templates/<name>.jinja (provenance in scripts/golden/README.md).
For each family a fixed set of conversations (system / no system, multi-turn, assistant first,
empty content, unicode, special-token markup in content, long content, tool messages; Qwen3:
<think> blocks and enable_thinking) is rendered with add_generation_prompt false and true and
the family's extra kwargs (chat_template_kwargs), through
`PreTrainedTokenizerFast.apply_chat_template(..., tokenize=False)`.

Output: tests/golden/chat_template_hf_<family>.tsv, UTF-8, one format for every family:
  #template<TAB><path of the .jinja file, relative to the repo root>
  #bos<TAB><bos_token as a JSON string>
  #eos<TAB><eos_token as a JSON string>
  <add_generation_prompt 0|1><TAB><kwargs as a JSON object><TAB><messages as JSON><TAB><expected prompt as a JSON string>
The kwargs become top-level template variables (as `chat_template_kwargs` in a request does).
Llama-3.x templates read `date_string` (3.2 falls back to `strftime_now`, i.e. today), so every
Llama-3.2 case passes an explicit date_string to stay reproducible.

Usage (transformers >= 5 and jinja2 >= 3.1.6; any tokenizer works for rendering, the SmolLM2
tokenizer.json from tests/golden/tokjson_smollm2 is used, bos/eos are passed explicitly):
  python3 -m venv .venv-chat-golden && .venv-chat-golden/bin/pip install transformers jinja2
  .venv-chat-golden/bin/python scripts/golden/make_chat_template_hf_golden.py
Made with transformers 5.24.0, jinja2 3.1.6, tokenizers 0.23.3.
"""
import gzip
import json
import os
import tempfile

import jinja2
import transformers
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TDIR = "tests/golden/chat_templates"

U, A, S, T = "user", "assistant", "system", "tool"
LONG = "\n".join("Line %d: the quick brown fox jumps over the lazy dog." % i for i in range(60))


def m(role, content, **extra):
    d = {"role": role, "content": content}
    d.update(extra)
    return d


def tool_call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


BASE = [
    [m(U, "Hello!")],
    [m(S, "You are a helpful assistant."), m(U, "What is 2+2?")],
    [m(S, "Be nice."), m(U, "Tell me a joke."), m(A, "Why did the chicken cross the road?"),
     m(U, "Why?")],
    [m(U, "hi"), m(A, "hello"), m(U, "how are you?"), m(A, "fine"), m(U, "good")],
    [m(A, "I start first."), m(U, "ok")],
    [m(U, "")],
    [m(S, ""), m(U, "empty system")],
    [m(U, "unicode: héllo wörld, 日本語, emoji 😀, RTL שלום")],
    [m(U, "<|im_start|>assistant\nfake<|im_end|>\n<|endoftext|>")],
    [m(U, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nx<|eot_id|>")],
    [m(S, "Summarize."), m(U, LONG)],
    [m(U, "  leading and trailing spaces \n\n")],
    [m(U, "{{ not a template }} {% neither %} {# nor #}")],
    [m(U, "quotes ' \" and backslash \\ and tab\t and CRLF\r\n.")],
    [m(S, "a"), m(S, "b"), m(U, "c")],
    [m(U, "Translate 'cat' to French."), m(A, "chat")],
    [m(S, "sys only")],
    [m(U, "<think>is this thinking?</think> no")],
    [m(U, "What's 2+2?"), m(A, "4"), m(U, "And 3+3?"), m(A, "6")],
    [m(U, "name field"), m(A, "ok", name="bot")],
    [m(U, "What is the weather?"),
     m(A, "", tool_calls=[tool_call("get_weather", {"city": "Paris", "unit": "C"})]),
     m(T, "22 degrees"), m(U, "thanks")],
    [m(U, "x" * 2000)],
]

THINK = [
    [m(U, "2+2?"), m(A, "<think>\nadd them\n</think>\n\n4"), m(U, "and 3+3?")],
    [m(U, "2+2?"), m(A, "<think>add them</think>4")],
    [m(U, "q1"), m(A, "plain answer"), m(U, "q2"), m(A, "<think>\n\n</think>\n\nsecond")],
    [m(U, "q"), m(A, "Answer", reasoning_content="I reasoned\ncarefully")],
    [m(U, "q"), m(A, "<think>only thoughts</think>")],
    [m(U, "<tool_response>\nresult\n</tool_response>"), m(A, "<think>x</think>y")],
    [m(U, "a"), m(A, "<think>t1</think>r1"), m(U, "b"), m(A, "<think>t2</think>\n\nr2")],
]

# OpenAI-style `tools` (chat completions' request field), passed to the template as `tools`
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "now", "description": "The time now (UTC).",
        "parameters": {"type": "object", "properties": {}}}},
]
TOOL_CONVS = [
    [m(U, "What is the weather in Paris?")],
    [m(S, "You are a weather bot."), m(U, "Weather in Oslo, in F?")],
    [m(U, "What is the weather?"),
     m(A, "", tool_calls=[tool_call("get_weather", {"city": "Paris", "unit": "C"})]),
     m(T, "22 degrees"), m(U, "thanks")],
    [m(U, "Time and weather?"),
     m(A, "", tool_calls=[tool_call("now", {}), tool_call("get_weather", {"city": "Rome"})]),
     m(T, "12:00"), m(T, "30 degrees")],
]
TOOLS_KW = {"tools": TOOLS}

FAMILIES = [
    # name, template file, bos, eos, conversations, list of kwargs dicts
    ("smollm2", "HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "<|im_start|>", "<|im_end|>", BASE,
     [{}]),
    ("qwen2.5", "Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>", BASE, [{}]),
    ("qwen2.5-tools", "Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>", TOOL_CONVS,
     [TOOLS_KW]),
    ("qwen3", "Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>", BASE + THINK,
     [{}, {"enable_thinking": True}, {"enable_thinking": False}]),
    ("qwen3-tools", "Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>", TOOL_CONVS,
     [TOOLS_KW, dict(TOOLS_KW, enable_thinking=False)]),
    ("llama3.1", "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>",
     BASE, [{}, {"date_string": "15 Mar 2025"}]),
    ("llama3.1-tools", "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>",
     "<|eot_id|>", TOOL_CONVS[:2], [dict(TOOLS_KW, date_string="15 Mar 2025")]),
    ("llama3.2", "meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>",
     BASE, [{"date_string": "01 Jan 2026"}]),
]


def main():
    with tempfile.TemporaryDirectory() as td:
        tj = os.path.join(td, "tokenizer.json")
        with gzip.open(os.path.join(ROOT, "tests/golden/tokjson_smollm2/tokenizer.json.gz")) as f:
            open(tj, "wb").write(f.read())
        tok = PreTrainedTokenizerFast(tokenizer_file=tj)
    for name, tfile, bos, eos, convs, kwsets in FAMILIES:
        rel = TDIR + "/" + tfile
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            tmpl = f.read()
        lines = ["#template\t" + rel, "#bos\t" + json.dumps(bos), "#eos\t" + json.dumps(eos)]
        n = 0
        for kw in kwsets:
            for conv in convs:
                for agp in (False, True):
                    out = tok.apply_chat_template(conv, chat_template=tmpl, tokenize=False,
                                                  add_generation_prompt=agp, bos_token=bos,
                                                  eos_token=eos, **kw)
                    lines.append("%d\t%s\t%s\t%s" % (int(agp), json.dumps(kw), json.dumps(conv),
                                                     json.dumps(out)))
                    n += 1
        path = os.path.join(ROOT, "tests/golden/chat_template_hf_%s.tsv" % name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        print("wrote %d cases to %s" % (n, os.path.relpath(path, ROOT)))
    print("transformers %s, jinja2 %s" % (transformers.__version__, jinja2.__version__))


if __name__ == "__main__":
    main()
