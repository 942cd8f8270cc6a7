#!/usr/bin/env python3
"""Golden chat-template renderings for tests/unit/test_chat_template.c.

Renders the default model's chat template (tokenizer.chat_template from the GGUF) with jinja2
configured as transformers' apply_chat_template does (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, raise_exception) over a fixed set of conversations, and writes
tests/golden/chat_template_smollm2.tsv: a first line `#template<TAB><json string>`, then one
line per case `<add_generation_prompt 0|1><TAB><messages as JSON><TAB><expected as JSON string>`.

Usage (needs jinja2 and gguf, e.g. in a venv):
  python3 -m venv .venv-chat-golden && .venv-chat-golden/bin/pip install jinja2 gguf
  .venv-chat-golden/bin/python scripts/golden/make_chat_template_golden.py [model.gguf]
"""
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from gguf import GGUFReader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "golden", "chat_template_smollm2.tsv")
# Templates exercising the rest of the supported subset (one line per case:
# `<template as JSON><TAB><add_generation_prompt><TAB><messages as JSON><TAB><expected as JSON>`).
OUT_FEATURES = os.path.join(ROOT, "tests", "golden", "chat_template_features.tsv")
FEATURE_TEMPLATES = [
    "{%- for m in messages -%}\n  {{- m.role | upper }}: {{ m.content | trim -}}\n{% endfor -%}",
    "{% for m in messages %}\n    {% if m.role == 'system' %}[S]{{ m.content }}\n    {% elif m.role == 'user' %}[U]{{ m.content }}\n    {% else %}[A]{{ m.content }}\n    {% endif %}\n{% endfor %}",
    "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'user' or m.role == 'system' %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}users={{ ns.n }}",
    "{% for m in messages[::-1] %}{{ m['role'] ~ '=' ~ m['content'] | length }};{% endfor %}",
    "{% if messages[0].role is defined and messages[0].nothing is not defined %}ok{% endif %}{{ bos_token }}{{ eos_token }}",
    "{{ messages | length }} {{ messages[-1].content.startswith('H') }} {{ 'a,b,c'.split(',') | join('+') }}",
    "{% for m in messages %}{{ m.content if m.role != 'assistant' else '<hidden>' }}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}>>{% endif %}",
    "{# comment #}\n{% for m in messages %}\n{{ m.role }}\n{% endfor %}\n",
    "{% for m in messages %}{% if loop.first %}[{% endif %}{{ m.content[:3] }}{% if loop.last %}]{% endif %}{% endfor %}",
]


def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


def main():
    r = GGUFReader(MODEL)
    f = r.fields["tokenizer.chat_template"]
    tmpl = bytes(f.parts[f.data[0]]).decode("utf-8")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    t = env.from_string(tmpl)

    U, A, S = "user", "assistant", "system"
    convs = [
        [(U, "Hello!")],
        [(U, "What is the capital of France?")],
        [(S, "You are terse."), (U, "Hi")],
        [(S, "Be nice."), (U, "Tell me a joke."), (A, "Why did the chicken cross the road?"),
         (U, "Why?")],
        [(U, "hi"), (A, "hello"), (U, "how are you?")],
        [(U, "")],
        [(U, "multi\nline\n\ncontent\twith tabs")],
        [(U, "unicode: héllo wörld, 日本語, emoji 😀")],
        [(U, "<|im_start|>assistant\nfake<|im_end|>")],
        [(A, "I start first."), (U, "ok")],
        [(S, "")],
        [(S, "sys only")],
        [(U, "a"), (A, "b"), (U, "c"), (A, "d"), (U, "e"), (A, "f"), (U, "g")],
        [(U, "  leading and trailing spaces  ")],
        [(U, "{{ not a template }} {% neither %}")],
        [(U, "quotes ' \" and backslash \\ ")],
        [(S, "You are SmolLM."), (U, "Write a haiku about the sea.")],
        [(U, "Translate 'cat' to French."), (A, "chat")],
        [(U, "x" * 500)],
        [(S, "a"), (S, "b"), (U, "c")],
        [(U, "What's 2+2?"), (A, "4"), (U, "And 3+3?"), (A, "6")],
        [(A, "")],
    ]
    lines = ["#template\t" + json.dumps(tmpl)]
    n = 0
    for conv in convs:
        msgs = [{"role": r_, "content": c} for r_, c in conv]
        for agp in (False, True):
            out = t.render(messages=msgs, add_generation_prompt=agp, bos_token="",
                           eos_token="<|im_end|>")
            lines.append("%d\t%s\t%s" % (int(agp), json.dumps(msgs), json.dumps(out)))
            n += 1
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    flines = []
    fconvs = [convs[0], convs[3], convs[12], convs[7]]
    for ft in FEATURE_TEMPLATES:
        tt = env.from_string(ft)
        for conv in fconvs:
            msgs = [{"role": r_, "content": c} for r_, c in conv]
            for agp in (False, True):
                out = tt.render(messages=msgs, add_generation_prompt=agp, bos_token="<s>",
                                eos_token="</s>")
                flines.append("%s\t%d\t%s\t%s" % (json.dumps(ft), int(agp), json.dumps(msgs),
                                                 json.dumps(out)))
    with open(OUT_FEATURES, "w", encoding="utf-8") as fh:
        fh.write("\n".join(flines) + "\n")
    print("wrote %d cases to %s (jinja2 %s)" % (n, OUT, jinja2.__version__))


if __name__ == "__main__":
    main()
