"""End-to-end tests of `sglc bench_serving`: the real benchmark client against a live `sglc serve`
on the default model, for each backend (native /generate, /v1/completions, /v1/chat/completions).
Checks the printed "Serving Benchmark Result" block, the JSONL line, and the counts against the
server's own /metrics counters; plus bad arguments, a wrong key, an unreachable server, requests
the server rejects and a server that dies mid-run. Binary: $SGLC_BINARY (default build/sglc)."""
import json
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from test_server import API_KEY, BINARY, QUICK, Server, free_port, server  # noqa: F401

# SGLang's block, in order (plus P90/P99 E2E and the TPOT section of newer SGLang releases)
BLOCK_LABELS = [
    "Backend:", "Traffic request rate:", "Max request concurrency:", "Successful requests:",
    "Benchmark duration (s):", "Total input tokens:", "Total generated tokens:",
    "Total generated tokens (retokenized):", "Request throughput (req/s):",
    "Input token throughput (tok/s):", "Output token throughput (tok/s):",
    "Total token throughput (tok/s):", "Concurrency:", "Mean E2E Latency (ms):",
    "Median E2E Latency (ms):", "P90 E2E Latency (ms):", "P99 E2E Latency (ms):",
    "Mean TTFT (ms):", "Median TTFT (ms):", "P99 TTFT (ms):", "Mean TPOT (ms):",
    "Median TPOT (ms):", "P99 TPOT (ms):", "Mean ITL (ms):", "Median ITL (ms):", "P95 ITL (ms):",
    "P99 ITL (ms):", "Max ITL (ms):",
]


def bench(server_url, *args, env_key=False, timeout=600):
    cmd = [BINARY, "bench_serving", "--base-url", server_url, *map(str, args)]
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    if env_key:
        env["OPENAI_API_KEY"] = API_KEY
    else:
        cmd += ["--api-key", API_KEY]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def parse_block(out):
    """The result block as {label: value string}, checking its frame and the order of lines."""
    lines = out.splitlines()
    top = lines.index("=" * 12 + " Serving Benchmark Result " + "=" * 12)
    end = lines.index("=" * 50, top + 1)
    vals, labels = {}, []
    for line in lines[top + 1:end]:
        if line.startswith("-"):
            assert len(line) == 50, line
            continue
        label, value = line[:40].rstrip(), line[41:].strip()
        assert line[40] == " " and label.endswith(":"), line
        labels.append(label)
        vals[label] = value
    assert labels == BLOCK_LABELS
    return vals


def metrics(server):
    text = requests.get(server.url + "/metrics", timeout=30,
                        headers={"Authorization": "Bearer " + API_KEY}).text
    out = {}
    for name in ("generation_tokens_total", "num_requests_total"):
        m = re.search(r"^sglang:%s\{[^}]*\} ([0-9.e+]+)$" % name, text, re.M)
        assert m, name
        out[name] = float(m.group(1))
    return out


def last_json(path):
    with open(path) as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    return json.loads(lines[-1]), len(lines)


NUM, IN_LEN, OUT_LEN = (4, 24, 6) if QUICK else (6, 48, 10)


@pytest.mark.parametrize("backend", ["sglang", "sglang-oai", "sglang-oai-chat"])
def test_backend_random(server, tmp_path, backend):
    out_file = tmp_path / "res.jsonl"
    before = metrics(server)
    r = bench(server.url, "--backend", backend, "--num-prompts", NUM, "--random-input-len", IN_LEN,
              "--random-output-len", OUT_LEN, "--random-range-ratio", 1, "--max-concurrency", 3,
              "--output-file", out_file, "--output-details", env_key=backend == "sglang-oai")
    assert r.returncode == 0, r.stdout + r.stderr
    after = metrics(server)
    vals = parse_block(r.stdout)
    res, n_lines = last_json(out_file)
    assert n_lines == 1
    assert vals["Backend:"] == backend and res["backend"] == backend
    assert vals["Traffic request rate:"] == "inf" and res["request_rate"] == float("inf")
    assert vals["Max request concurrency:"] == "3" and res["max_concurrency"] == 3
    assert res["dataset_name"] == "random"
    assert res["completed"] == NUM == res["num_prompts"]
    assert int(vals["Successful requests:"]) == NUM
    # ignore_eos with range ratio 1: every request gets exactly the requested tokens, as the
    # server itself counts them (the bench adds one warmup request of min(OUT_LEN, 32) tokens)
    assert res["total_output_tokens"] == NUM * OUT_LEN
    assert res["output_lens"] == [OUT_LEN] * NUM
    assert after["generation_tokens_total"] - before["generation_tokens_total"] == \
        NUM * OUT_LEN + min(OUT_LEN, 32)
    assert after["num_requests_total"] - before["num_requests_total"] == NUM + 1
    assert int(vals["Total generated tokens:"]) == NUM * OUT_LEN
    assert res["total_output_tokens_retokenized"] > 0
    if backend == "sglang":
        assert res["input_lens"] == [IN_LEN] * NUM  # input_ids sent as drawn
    else:
        assert all(0 < n <= 3 * IN_LEN for n in res["input_lens"])  # decoded text, re-encoded
    assert res["total_input_tokens"] == sum(res["input_lens"])
    assert res["errors"] == [""] * NUM
    assert all(t for t in res["generated_texts"])
    # streaming: a first token before the end, and at most one gap per later token
    assert res["duration"] > 0
    for t, itl in zip(res["ttfts"], res["itls"]):
        assert 0 < t < res["duration"]
        assert 0 < len(itl) <= OUT_LEN - 1
        assert all(x >= 0 for x in itl)
    for stat in ("mean", "median", "p99"):
        assert 0 < res[stat + "_ttft_ms"] <= res[stat + "_e2e_latency_ms"], stat
    assert res["mean_e2e_latency_ms"] <= res["duration"] * 1000
    assert 0 < res["mean_itl_ms"] <= res["max_itl_ms"]
    assert res["mean_tpot_ms"] > 0
    assert res["request_throughput"] == pytest.approx(NUM / res["duration"])
    assert res["output_throughput"] == pytest.approx(NUM * OUT_LEN / res["duration"])
    assert 0 < res["concurrency"] <= 3 + 1e-6
    # the printed block and the JSON line agree
    for label, key in [("Mean TTFT (ms):", "mean_ttft_ms"), ("P99 ITL (ms):", "p99_itl_ms"),
                       ("Median E2E Latency (ms):", "median_e2e_latency_ms"),
                       ("Benchmark duration (s):", "duration"),
                       ("Output token throughput (tok/s):", "output_throughput")]:
        assert float(vals[label]) == pytest.approx(res[key], abs=0.006), label


def test_shared_prefix_poisson_appends(server, tmp_path):
    out_file = tmp_path / "res.jsonl"
    args = ["--backend", "sglang-oai", "--dataset-name", "generated-shared-prefix",
            "--gsp-num-groups", 2, "--gsp-prompts-per-group", 2, "--gsp-system-prompt-len", 40,
            "--gsp-question-len", 6, "--gsp-output-len", 4, "--request-rate", 8,
            "--output-file", out_file]
    for run in (1, 2):
        r = bench(server.url, *args)
        assert r.returncode == 0, r.stdout + r.stderr
        res, n_lines = last_json(out_file)
        assert n_lines == run  # appended, never truncated
    vals = parse_block(r.stdout)
    assert vals["Traffic request rate:"] == "8.0" and res["request_rate"] == 8.0
    assert vals["Max request concurrency:"] == "not set" and res["max_concurrency"] is None
    assert res["dataset_name"] == "generated-shared-prefix"
    assert res["completed"] == 4 and res["total_output_tokens"] == 16
    # system prompt (40 ids), blank line, question (6 ids), decoded and re-encoded
    assert res["total_input_tokens"] >= 4 * 40


def test_disable_stream_and_eos(server, tmp_path):
    out_file = tmp_path / "res.jsonl"
    r = bench(server.url, "--backend", "sglang-oai-chat", "--disable-stream",
              "--disable-ignore-eos", "--num-prompts", 3, "--random-input-len", 16,
              "--random-output-len", 8, "--random-range-ratio", 1, "--output-file", out_file,
              "--output-details")
    assert r.returncode == 0, r.stdout + r.stderr
    res, _ = last_json(out_file)
    assert res["completed"] == 3
    # the model may stop early now, never late; the count is the server's
    assert all(0 <= n <= 8 for n in res["output_lens"])
    assert res["total_output_tokens"] == sum(res["output_lens"])
    # without a stream the first token arrives with the whole answer
    assert res["mean_ttft_ms"] == pytest.approx(res["mean_e2e_latency_ms"])
    assert res["itls"] == [[], [], []] and res["mean_itl_ms"] == 0


def test_rejected_requests_are_counted(server, tmp_path):
    out_file = tmp_path / "res.jsonl"
    # prompt + max_new_tokens beyond the context: the server answers 400 to each request
    r = bench(server.url, "--num-prompts", 3, "--random-input-len", 8, "--random-output-len",
              100000, "--random-range-ratio", 1, "--warmup-requests", 0, "--output-file",
              out_file, "--output-details")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 of 3 requests failed" in r.stderr and "HTTP 400" in r.stderr
    assert parse_block(r.stdout)["Successful requests:"] == "0"
    res, _ = last_json(out_file)
    assert res["completed"] == 0 and res["total_output_tokens"] == 0
    assert all("context length" in e for e in res["errors"])
    # a warmup request (prompt longer than the context) that fails stops the run before it
    # starts, with one line
    r = bench(server.url, "--num-prompts", 2, "--random-input-len", 9000, "--random-output-len",
              4, "--random-range-ratio", 1, "--output-file", out_file)
    assert r.returncode == 1
    assert "warmup failed: HTTP 400" in r.stderr and len(r.stderr.splitlines()) == 1
    assert "Serving Benchmark Result" not in r.stdout


def test_wrong_key_and_unreachable(server, tmp_path):
    r = subprocess.run([BINARY, "bench_serving", "--base-url", server.url, "--api-key", "nope",
                        "--num-prompts", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "refused the API key" in r.stderr and len(r.stderr.splitlines()) == 1
    port = free_port()
    r = subprocess.run([BINARY, "bench_serving", "--host", "127.0.0.1", "--port", str(port),
                        "--num-prompts", "2", "--output-file", str(tmp_path / "x.jsonl")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [r.stderr.strip()]  # one line
    assert "cannot reach the server at http://127.0.0.1:%d" % port in r.stderr
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("args, needle", [
    (["--backend", "vllm"], "--backend"),
    (["--dataset-name", "sharegpt"], "--dataset-name"),
    (["--request-rate", "-1"], "--request-rate"),
    (["--max-concurrency", "0"], "--max-concurrency"),
    (["--num-prompts", "ten"], "--num-prompts"),
    (["--extra-request-body", "[1]"], "--extra-request-body"),
    (["--port"], "--port"),
    (["--no-such-flag", "1"], "unknown option"),
])
def test_bad_arguments(args, needle):
    r = subprocess.run([BINARY, "bench_serving", *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Serving Benchmark Result" not in r.stdout


def test_server_dies_mid_run(tmp_path):
    s = Server(["--max-running-requests", "4"])
    out_file = tmp_path / "res.jsonl"
    cmd = [BINARY, "bench_serving", "--base-url", s.url, "--backend", "sglang-oai",
           "--num-prompts", 4, "--random-input-len", 16, "--random-output-len", 4000,
           "--random-range-ratio", 1, "--warmup-requests", 0, "--output-file", out_file]
    p = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            st = requests.get(s.url + "/get_server_info", timeout=30).json()
            if st["internal_states"][0]["num_running_reqs"] > 0:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
        s.stop()
    assert p.returncode == 1, out + err
    assert "4 of 4 requests failed" in err
    assert parse_block(out)["Successful requests:"] == "0"
    res, _ = last_json(out_file)
    assert res["completed"] == 0
