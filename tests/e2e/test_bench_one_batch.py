"""`sglc bench_one_batch`: SGLang's printed lines and JSONL for every case of the sweep, and bad
arguments refused with one line."""
import json
import re
import subprocess

from test_server import BINARY


def run(*args, timeout=600):
    return subprocess.run([BINARY, "bench_one_batch", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_sweep_lines_and_jsonl(tmp_path):
    out_file = tmp_path / "r.jsonl"
    r = run("--batch-size", "1", "3", "--input-len", "8", "--output-len", "4,7", "--run-name",
            "t", "--result-filename", str(out_file))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in out_file.read_text().splitlines()]
    assert [(j["batch_size"], j["input_len"], j["output_len"]) for j in rows] == [
        (1, 8, 4), (1, 8, 7), (3, 8, 4), (3, 8, 7)]
    keys = {"run_name", "batch_size", "input_len", "output_len", "prefill_latency",
            "prefill_throughput", "median_decode_latency", "median_decode_throughput",
            "total_latency", "overall_throughput"}
    for j in rows:
        assert set(j) == keys and j["run_name"] == "t"
        assert j["prefill_latency"] > 0 and j["median_decode_latency"] > 0
        assert abs(j["prefill_throughput"] - j["batch_size"] * j["input_len"] /
                   j["prefill_latency"]) < 1e-3 * j["prefill_throughput"]
        assert j["total_latency"] >= j["prefill_latency"]
    prefill = re.findall(r"^Prefill\. latency: ([0-9.]+) s, throughput: +([0-9.]+) token/s$",
                         r.stdout, re.M)
    decode = re.findall(r"^Decode (\d+)\. Batch size: (\d+), latency: [0-9.]+ s, throughput: "
                        r"+[0-9.]+ token/s$", r.stdout, re.M)
    med = re.findall(r"^Decode\.  median latency: [0-9.]+ s, median throughput: +[0-9.]+ "
                     r"token/s$", r.stdout, re.M)
    total = re.findall(r"^Total\. latency: +[0-9.]+ s, throughput: +[0-9.]+ token/s$", r.stdout,
                       re.M)
    assert len(prefill) == len(med) == len(total) == 4
    # output_len 4 -> 3 decode steps, 7 -> 6 of which the first 5 are printed
    assert len(decode) == 3 + 5 + 3 + 5


def test_bad_arguments():
    for args in (["--batch-size"], ["--batch-size", "0"], ["--input-len", "x"],
                 ["--output-len", "3", "--bogus", "1"], ["--quantization", "q5"],
                 ["--model-path", "/nonexistent.gguf"], ["--run-name", 'a"b']):
        r = run(*args, timeout=60)
        assert r.returncode != 0, args
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("sglc"), (args, r.stderr)
