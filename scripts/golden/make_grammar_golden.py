#!/usr/bin/env python3
"""Writes the grammar fixtures of tests/unit/test_grammar.c under tests/golden/grammar/.

Every expected verdict comes from an independent reference, not from sglc:
  json_schema.json  validity from the `jsonschema` package (Draft 2020-12 validator, with
                    FormatChecker) and `json.loads`, plus the two documented choices of sglc's
                    grammar applied here by construction:
                      - additionalProperties absent means false when the schema lists
                        properties (the script adds it before validating);
                      - whitespace: compact JSON, Python's json.dumps default (", " / ": ")
                        and one space inside brackets are allowed; indented (newline) JSON and
                        leading / trailing spaces are not (expected false whatever jsonschema
                        says).
                    Instances keep the declared property order (sglc fixes it, as xgrammar).
  regex.json        re.fullmatch(pattern, s, flags=re.ASCII) (\\d \\w \\s are ASCII; literals
                    and classes stay Unicode).
  ebnf.json         hand-written Python recognizers (a regex, or a small recursive parser)
                    equivalent to each grammar.

Run: python3 -m venv .venv-golden && .venv-golden/bin/pip install jsonschema
     .venv-golden/bin/python scripts/golden/make_grammar_golden.py
"""
import copy
import json
import os
import re
import sys

import jsonschema

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "grammar")


# ------------------------------------------------------------------ JSON serializations

def dump_compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def dump_default(v):
    return json.dumps(v, ensure_ascii=False)


def dump_spaced(v):
    """One space inside brackets and after separators: { "a": [ 1, 2 ] }."""
    if isinstance(v, dict):
        if not v:
            return "{ }"
        return "{ " + ", ".join(json.dumps(k, ensure_ascii=False) + ": " + dump_spaced(x)
                                for k, x in v.items()) + " }"
    if isinstance(v, list):
        if not v:
            return "[ ]"
        return "[ " + ", ".join(dump_spaced(x) for x in v) + " ]"
    return json.dumps(v, ensure_ascii=False)


def ws_policy_ok(text):
    """sglc's whitespace policy, by construction: outside strings only single spaces, each
    right after one of '{[,:' or right before '}' or ']'."""
    in_str = esc = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in " \t\n\r":
            prev = text[i - 1] if i > 0 else ""
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if ch != " " or not (prev and prev in "{[,:" or nxt and nxt in "}]"):
                return False
    return True


def strict(schema):
    """sglc's reading of additionalProperties: absent = false when properties are listed."""
    s = copy.deepcopy(schema)

    def walk(x):
        if isinstance(x, dict):
            if "properties" in x and "additionalProperties" not in x:
                x["additionalProperties"] = False
            for k, v in x.items():
                if k in ("properties", "$defs", "definitions"):
                    for sub in v.values():
                        walk(sub)
                elif k in ("items", "additionalProperties"):
                    walk(v)
                elif k in ("anyOf", "oneOf", "allOf"):
                    for sub in v:
                        walk(sub)
        return x

    return walk(s)


def valid(schema, value):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    v = cls(strict(schema), format_checker=cls.FORMAT_CHECKER)
    return v.is_valid(value)


def schema_cases(schema, values, raw=()):
    cases = []
    seen = set()

    def add(text, ok):
        if text not in seen:
            seen.add(text)
            cases.append([text, ok])

    for v in values:
        ok = valid(schema, v)
        add(dump_compact(v), ok)
        add(dump_default(v), ok)
        add(dump_spaced(v), ok)
        ind = json.dumps(v, indent=2, ensure_ascii=False)
        if "\n" in ind:
            add(ind, False)  # whitespace policy: no newlines
        add(" " + dump_compact(v), False)  # nothing before the value
        add(dump_compact(v) + " ", False)  # nothing after it
    for text in raw:
        try:
            v = json.loads(text)
            ok = valid(schema, v) and ws_policy_ok(text)
        except ValueError:
            ok = False
        add(text, ok)
    return {"schema": schema, "cases": cases}


def int_schema(**bounds):
    s = {"type": "integer"}
    s.update(bounds)
    return s


INTS = [-1001, -100, -38, -37, -36, -21, -20, -19, -11, -10, -6, -5, -4, -3, -2, -1, 0, 1, 2, 5,
        6, 7, 9, 10, 11, 12, 41, 42, 43, 99, 100, 101, 119, 120, 121, 999, 1000, 1233, 1234, 1235,
        12345, 12346, 99999, 100000]


def schemas():
    out = []
    # integers: exact ranges (digit-range grammars) and signs
    for b in [dict(minimum=0, maximum=9), dict(minimum=-5, maximum=5), dict(minimum=10, maximum=99),
              dict(minimum=-100, maximum=-10), dict(minimum=7, maximum=12345),
              dict(minimum=-37, maximum=1234), dict(minimum=3), dict(minimum=-20),
              dict(maximum=42), dict(maximum=-3), dict(exclusiveMinimum=0, maximum=100),
              dict(minimum=0, exclusiveMaximum=1000), dict(minimum=100, maximum=100000),
              dict(minimum=0, maximum=0)]:
        out.append(schema_cases(int_schema(**b), INTS, raw=["01", "1.5", "+1", ""]))
    # sglc writes integers without a fraction or exponent ("3.0" and "1e2" are integers to
    # jsonschema): such texts are not in these fixtures
    out.append(schema_cases({"type": "integer"}, INTS, raw=["007", "-", "--1"]))
    out.append(schema_cases({"type": "number"}, [0, -1, 2.5, -0.125, 1e-07, 123456789, 3.25e+20],
                            raw=["1.", ".5", "1e", "-", "1E5", "1.5e-3", "0.0"]))
    out.append(schema_cases({"type": "number", "minimum": 0}, [0, 2.5, 7, 1e-07, -1, -0.5],
                            raw=["-2.5"]))
    out.append(schema_cases({"type": "number", "maximum": -1}, [-1, -2.5, -100, -1e+30],
                            raw=["3", "-2e3"]))
    # strings
    strs = ["", "a", "ab", "abc", "abcd", "abcde", "abcdef", "héllo", "日本語", "😀x", "tab\there",
            "quote\"d", "back\\slash", "line\nbreak"]
    for b in [dict(), dict(minLength=2), dict(maxLength=3), dict(minLength=1, maxLength=5),
              dict(minLength=3, maxLength=3)]:
        s = {"type": "string"}
        s.update(b)
        out.append(schema_cases(s, strs, raw=['"unterminated', "'single'", '"bad \\x escape"',
                                              '"\\u00e9"', '"\\u12"']))
    out.append(schema_cases({"type": "string", "pattern": "^[a-z]+-[0-9]{2,3}$"},
                            ["ab-12", "ab-123", "ab-1234", "Ab-12", "-12", "x-99"]))
    out.append(schema_cases({"type": "string", "pattern": "[0-9]"},
                            ["a1b", "12", "abc", "", "x9"]))
    out.append(schema_cases({"type": "string", "pattern": "^(café|thé)$"},
                            ["café", "thé", "cafe", "the", "caféthé"]))
    out.append(schema_cases({"type": "string", "format": "uuid"},
                            ["123e4567-e89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000",
                             "123E4567-E89B-12D3-A456-426614174000", "123e4567-e89b-12d3-a456-42661417400g",
                             "not-a-uuid"]))
    out.append(schema_cases({"type": "string", "format": "ipv4"},
                            ["192.168.0.1", "255.255.255.255", "256.1.1.1", "1.2.3", "01.2.3.4",
                             "0.0.0.0", "1.2.3.4.5"]))
    out.append(schema_cases({"type": "string", "format": "date"},
                            ["2024-01-31", "1999-12-01", "2024-13-01", "2024-1-01", "24-01-01",
                             "2024-01-00"]))
    # booleans, null, enum, const, type arrays
    misc = [True, False, None, 0, 1, "x", "true", [], {}]
    out.append(schema_cases({"type": "boolean"}, misc, raw=["tru", "True"]))
    out.append(schema_cases({"type": "null"}, misc, raw=["nul", "None"]))
    out.append(schema_cases({"type": ["string", "null"]}, misc + ["", "abc"]))
    out.append(schema_cases({"type": ["integer", "boolean"], "minimum": 0, "maximum": 9},
                            misc + [5, 10, -1]))
    out.append(schema_cases({"enum": ["red", "green", "blue"]},
                            ["red", "green", "blue", "Red", "", "gree", "greenish", 1]))
    out.append(schema_cases({"enum": [1, "one", None, True, [1, 2], {"a": 1}]},
                            [1, "one", None, True, [1, 2], {"a": 1}, 2, False, [1], {"a": 2}]))
    out.append(schema_cases({"const": "fixed"}, ["fixed", "fixe", "fixedd", 1]))
    out.append(schema_cases({"const": {"k": [1, "v"]}}, [{"k": [1, "v"]}, {"k": [1]}, {}]))
    out.append(schema_cases({"enum": ["α", "日本", "😀"]}, ["α", "日本", "😀", "β", "日"]))
    # objects
    person = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer", "minimum": 0}},
              "required": ["name", "age"]}
    out.append(schema_cases(person, [{"name": "Ann", "age": 30}, {"name": "Ann"}, {"age": 3},
                                     {"name": "Bo", "age": -1}, {"name": 5, "age": 1},
                                     {"name": "A", "age": 1, "x": 2}, {}],
                            raw=['{"name":"Ann","age":30,}', '{"name":"Ann" "age":30}',
                                 '{"name":"Ann","age":30', '{"name" :"Ann","age":30}']))
    opt = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                            "c": {"type": "boolean"}}}
    out.append(schema_cases(opt, [{}, {"a": 1}, {"b": "x"}, {"c": True}, {"a": 1, "b": "x"},
                                  {"a": 1, "c": False}, {"b": "y", "c": True},
                                  {"a": 1, "b": "x", "c": True}, {"d": 1}, {"a": "1"}],
                            raw=['{,"a":1}', '{"a":1,,"b":"x"}']))
    mixed = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                              "c": {"type": "integer"}}, "required": ["b"]}
    out.append(schema_cases(mixed, [{"b": "x"}, {"a": 1, "b": "x"}, {"b": "x", "c": 2},
                                    {"a": 1, "b": "x", "c": 2}, {"a": 1}, {"a": 1, "c": 2}, {}]))
    # an extra member's key is any string but a declared name (additionalProperties applies to
    # the other keys only), so a declared key with a wrong value is rejected, and keys that
    # only start like a declared name are extra members
    out.append(schema_cases({"type": "object", "properties": {"a": {"type": "integer"}},
                             "additionalProperties": True},
                            [{}, {"a": 1}, {"a": 1, "z": [1]}, {"q": None}, {"a": "str"},
                             {"ab": "s"}, {"": 1}],
                            raw=['{"a":1,"b":2,}', '{"a":1 ,"b":2}']))
    out.append(schema_cases({"type": "object", "properties": {"a": {"type": "integer"}},
                             "additionalProperties": {"type": "string"}},
                            [{"a": 1, "x": "s"}, {"x": "s", "y": "t"}, {"a": 1, "x": 2},
                             {"a": "integer"}, {"type": "object", "a": "integer"},
                             {"ab": "s", "b": "t"}, {"a": 1, "abc": "s"}]))
    out.append(schema_cases({"type": "object", "properties": {"name": {"type": "string"},
                                                              "nam": {"type": "integer"}},
                             "additionalProperties": {"type": "boolean"}},
                            [{"name": "x", "nam": 1}, {"na": True}, {"names": False},
                             {"name": True}, {"nam": False}, {"n": True, "name_": False}]))
    out.append(schema_cases({"type": "object"}, [{}, {"x": 1}, {"x": {"y": [1, {"z": None}]}},
                                                 [], "s", 1]))
    out.append(schema_cases({"type": "object", "properties": {},
                             "additionalProperties": False}, [{}, {"a": 1}]))
    out.append(schema_cases({"type": "object", "required": ["id"]},
                            [{"id": 1}, {"id": "x"}, {}, {"other": 1}]))
    nested = {"type": "object", "properties": {
        "user": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1},
                                                  "tags": {"type": "array",
                                                           "items": {"type": "string"}}},
                 "required": ["id"]},
        "ok": {"type": "boolean"}}, "required": ["user", "ok"]}
    out.append(schema_cases(nested, [{"user": {"id": 1}, "ok": True},
                                     {"user": {"id": 1, "tags": ["a", "b"]}, "ok": False},
                                     {"user": {"id": 0}, "ok": True}, {"user": {}, "ok": True},
                                     {"user": {"id": 2, "tags": [1]}, "ok": True},
                                     {"ok": True}]))
    out.append(schema_cases({"type": "object", "properties": {"ünï": {"type": "string"},
                                                              "q\"k": {"type": "integer"}},
                             "required": ["ünï"]},
                            [{"ünï": "x"}, {"ünï": "x", "q\"k": 1}, {"q\"k": 1}]))
    # arrays
    for b in [dict(), dict(minItems=1), dict(maxItems=2), dict(minItems=2, maxItems=3),
              dict(minItems=0, maxItems=0)]:
        s = {"type": "array", "items": {"type": "integer"}}
        s.update(b)
        out.append(schema_cases(s, [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4], ["a"], [1, "a"]],
                                raw=["[1,]", "[,1]", "[1 2]"]))
    out.append(schema_cases({"type": "array"}, [[], [1, "a", None, [True], {"k": []}], {}]))
    out.append(schema_cases({"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3},
                            [["x"], ["x", "y", "x"], ["x", "y", "x", "y"], ["z"]]))
    out.append(schema_cases({"type": "array", "items": {"type": "array",
                                                        "items": {"type": "number"}}},
                            [[[1, 2.5], []], [[1], ["a"]], [1]]))
    # $ref and combinators
    tree = {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["v"]}}, "$ref": "#/$defs/node"}
    out.append(schema_cases(tree, [{"v": 1}, {"v": 1, "kids": []},
                                   {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}, {"v": 4}]},
                                   {"v": 1, "kids": [{"kids": []}]}, {"kids": []}]))
    out.append(schema_cases({"definitions": {"pos": {"type": "integer", "minimum": 1}},
                             "type": "object", "properties": {"n": {"$ref": "#/definitions/pos"}},
                             "required": ["n"]}, [{"n": 1}, {"n": 0}, {"n": 99}, {}]))
    out.append(schema_cases({"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"$ref": "#/properties/a"}}},
        [{"a": 1, "b": 2}, {"b": "x"}, {"b": 3}]))
    linked = {"$defs": {"list": {"anyOf": [{"type": "null"}, {
        "type": "object", "properties": {"h": {"type": "string"}, "t": {"$ref": "#/$defs/list"}},
        "required": ["h", "t"]}]}}, "$ref": "#/$defs/list"}
    out.append(schema_cases(linked, [None, {"h": "a", "t": None},
                                     {"h": "a", "t": {"h": "b", "t": None}}, {"h": "a"},
                                     {"h": 1, "t": None}]))
    out.append(schema_cases({"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9},
                                       {"type": "string", "maxLength": 2}]},
                            [0, 9, 10, "", "ab", "abc", None]))
    out.append(schema_cases({"oneOf": [{"type": "boolean"}, {"type": "object", "properties": {
        "x": {"type": "integer"}}, "required": ["x"]}]},
        [True, {"x": 1}, {"x": "1"}, {}, None]))
    out.append(schema_cases({"allOf": [{"type": "string", "minLength": 2}]}, ["ab", "a", 3]))
    out.append(schema_cases(True, [1, "x", None, [1, {"a": []}], {"k": "v"}],
                            raw=["", "nul", "[1,]"]))
    out.append(schema_cases({}, [1, "x", {"a": {"b": [1.5, False]}}]))
    return out


# ------------------------------------------------------------------ regex

REGEXES = [
    (r"abc", ["abc", "ab", "abcd", "", "ABC"]),
    (r"a|b|cd", ["a", "b", "cd", "c", "ab", ""]),
    (r"(ab)*c", ["c", "abc", "ababc", "abac", "ab"]),
    (r"(?:x|yz)+", ["x", "yz", "xyzx", "", "y", "xy"]),
    (r"a?b+c*", ["b", "ab", "abbbccc", "ac", "abca", "bbb"]),
    (r"\d{3}-\d{4}", ["123-4567", "12-4567", "123-45678", "abc-defg", "123 4567"]),
    (r"\d{2,4}", ["1", "12", "123", "1234", "12345", "١٢"]),
    (r"x{3,}", ["xx", "xxx", "xxxxxxx", "xxxy"]),
    (r"[a-z0-9_]+", ["abc_12", "ABC", "a-b", "", "z"]),
    (r"[^0-9]+", ["abc", "a1", "日本", " ", ""]),
    (r"\w+\s\w+", ["hello world", "hello  world", "héllo world", "a\tb", "a_b c9"]),
    (r"\S+", ["abc", "a b", "é!", ""]),
    (r"\D\W", ["a!", "1!", "aa", "é "]),
    (r".{3}", ["abc", "a\nb", "日本語", "ab", "😀😀😀"]),
    (r"\.\*\+\?", [".*+?", "a*+?", ".*+"]),
    (r"[α-ω]+", ["αβγ", "ω", "αbγ", "Α", ""]),
    (r"[一-龥]{2,4}", ["日本", "日本語", "中文字符", "中文字符串", "日"]),
    (r"😀+|🎉", ["😀", "😀😀😀", "🎉", "🎉🎉", "😃"]),
    (r"caf[eé]", ["cafe", "café", "cafè"]),
    (r"[^α-ω]", ["a", "β", "日", "😀"]),
    (r"[\u00e0-\u00ff]+", ["àéÿ", "aé", "ÿ"]),
    (r"\x41\u0042", ["AB", "ab"]),
    (r"^hello$", ["hello", "hello\n", "hell"]),
    (r"(a|b)(c|d)(e|f)", ["ace", "bdf", "abc", "acf"]),
    (r"((a|b)+c){2}", ["acbc", "abcbac", "ac", "acbcac"]),
    (r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?", ["1.5", "-.5", "+3.", "1e5", "2.0E-10", "."]),
    (r"[A-Z][a-z]*( [A-Z][a-z]*)*", ["Hello World", "Hello world", "A B C", "A  B"]),
    (r"\(\d+\)", ["(12)", "12", "(12", "()"]),
    (r"[\]\[-]+", ["[]", "-", "[-]", "a"]),
    (r"[a\-z]", ["a", "-", "z", "b"]),
    (r"(yes|no|maybe)", ["yes", "no", "maybe", "ye", "yesno"]),
    (r"[a-c]{0,3}d", ["d", "abcd", "aaaad", "cd"]),
    (r"(\d{1,3}\.){3}\d{1,3}", ["192.168.0.1", "1.2.3", "1234.1.1.1", "1.2.3.4"]),
    (r"[\d\s]+", ["1 2 3", "12\t3", "a 1"]),
    (r"a{,2}b", ["b", "ab", "aab", "aaab"]),
    (r"x{2}y?", ["xx", "xxy", "x", "xxyy"]),
    (r"ü+ß?", ["ü", "üüß", "ß", "uß"]),
    (r"(?P<year>\d{4})-(?P<m>\d\d)", ["2024-01", "24-01", "2024-1"]),
    (r"a.c", ["abc", "a😀c", "a\nc", "ac"]),
    (r"\t\n", ["\t\n", "\t", "tn"]),
]


def regex_cases():
    out = []
    for pat, strs in REGEXES:
        c = re.compile(pat, flags=re.ASCII)
        out.append({"regex": pat,
                    "cases": [[s, c.fullmatch(s) is not None] for s in strs]})
    return out


# ------------------------------------------------------------------ EBNF

def arith_ok(s):
    """expr ::= term (("+" | "-") term)*; term ::= factor (("*" | "/") factor)*;
    factor ::= [0-9]+ | "(" expr ")" (no spaces)."""
    pos = [0]

    def peek():
        return s[pos[0]] if pos[0] < len(s) else ""

    def factor():
        if peek() == "(":
            pos[0] += 1
            if not expr() or peek() != ")":
                return False
            pos[0] += 1
            return True
        st = pos[0]
        while peek().isdigit() and peek() in "0123456789":
            pos[0] += 1
        return pos[0] > st

    def term():
        if not factor():
            return False
        while peek() in ("*", "/") and peek():
            pos[0] += 1
            if not factor():
                return False
        return True

    def expr():
        if not term():
            return False
        while peek() in ("+", "-") and peek():
            pos[0] += 1
            if not term():
                return False
        return True

    return expr() and pos[0] == len(s)


def balanced_ok(s):
    """root ::= item*; item ::= "(" root ")" | "[" root "]" ."""
    st = []
    for ch in s:
        if ch in "([":
            st.append(ch)
        elif ch in ")]":
            if not st or {"(": ")", "[": "]"}[st.pop()] != ch:
                return False
        else:
            return False
    return not st


EBNF = [
    ("""# arithmetic
root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")"
""", arith_ok, ["1", "1+2*3", "(1+2)*3", "((7))", "1+", "(1", "1)", "", "12/(3-4)*5", "a"]),
    ("""root ::= item*
item ::= "(" root ")" | "[" root "]"
""", balanced_ok, ["", "()", "[()]", "([)]", "((", "[]()[[]]", ")("]),
    ("""root ::= pair ("," pair)*   # key=value list
pair ::= key "=" value
key ::= [a-z]+
value ::= [0-9]{1,3} | "'" [^']* "'"
""", lambda s: re.fullmatch(r"[a-z]+=([0-9]{1,3}|'[^']*')(,[a-z]+=([0-9]{1,3}|'[^']*'))*", s)
        is not None,
     ["a=1", "a=1,bb='x y'", "a=1234", "a=", "a='unterminated", "A=1", "a=1,", "k='日本'"]),
    ("""root ::= greet " " name "\\n"?
greet ::= "héllo" | "привет" | "你好"
name ::= [A-Z] [a-zα-ω]*
""", lambda s: re.fullmatch("(héllo|привет|你好) [A-Z][a-zα-ω]*\n?", s) is not None,
     ["héllo Bob", "привет Αα", "你好 Zé", "你好 Zαβ\n", "hello Bob", "你好 bob", "你好 Z\n\n"]),
    ("""root ::= 'x'{2,3} "y"{1} [0-9]{0,2} "\\x41\\u00e9"
""", lambda s: re.fullmatch("x{2,3}y[0-9]{0,2}Aé", s) is not None,
     ["xxyAé", "xxxy12Aé", "xy1Aé", "xxxxyAé", "xxy123Aé", "xxyAe"]),
    ("""root   ::= "{" ws ( member ( "," ws member )* )? ws "}"
member ::= string ":" ws value
value  ::= string | [0-9]+ | "true" | "false" | root
string ::= "\\"" [^"\\\\]* "\\""
ws     ::= " "?
""", lambda s: json_like_ok(s),
     ['{}', '{"a":1}', '{ "a": {"b": true} }', '{"a":1,}', '{"a"}', '{"a":"x","b":false}',
      '{"a":{"b":{"c":{}}}}', '{"a\\"":1}']),
]


def json_like_ok(s):
    string = r'"[^"\\]*"'
    # recursive: strip innermost objects repeatedly, replacing them by a number
    ws = " ?"
    member = string + ":" + ws + "(?:" + string + "|[0-9]+|true|false)"
    obj = r"\{" + ws + "(?:" + member + "(?:," + ws + member + ")*)?" + ws + r"\}"
    prev = None
    while prev != s:
        prev = s
        m = re.fullmatch(obj, s)
        if m:
            return True
        # replace one innermost object that is a value by 0
        s2 = re.sub(r"(:" + ws + ")" + obj, lambda mm: mm.group(1) + "0", s, count=1)
        if s2 == s:
            return False
        s = s2
    return False


def ebnf_cases():
    return [{"ebnf": g, "cases": [[s, bool(f(s))] for s in strs]} for g, f, strs in EBNF]


def main():
    os.makedirs(OUT, exist_ok=True)
    sc = schemas()
    files = {"json_schema.json": sc, "regex.json": regex_cases(), "ebnf.json": ebnf_cases()}
    for name, data in files.items():
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            f.write("[\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in data) + "\n]\n")
    n_inst = sum(len(s["cases"]) for s in sc)
    n_rx = sum(len(r["cases"]) for r in files["regex.json"])
    n_eb = sum(len(r["cases"]) for r in files["ebnf.json"])
    print(f"{len(sc)} schemas / {n_inst} instances, {len(REGEXES)} regexes / {n_rx} strings, "
          f"{len(EBNF)} ebnf grammars / {n_eb} strings", file=sys.stderr)


if __name__ == "__main__":
    main()
