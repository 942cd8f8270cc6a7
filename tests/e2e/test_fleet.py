"""End-to-end tests of a fleet: `sglc serve` workers behind SGLang's own router (sglang-router from
PyPI, cache-aware policy), started and stopped by scripts/fleet.sh on loopback ports. Covers what
the router needs from a worker (registration, health, load, flush, /generate and the OpenAI
routes), the tokenizer `sglc export-tokenizer` writes for it (HF tokenizers, in the router and in
Python, encode exactly as the worker does), cache affinity through the router (hit rate read from
the workers' /metrics), a worker killed under load and restarted, and the Prometheus names a fleet
operator scrapes. Skips only when sglang-router cannot be installed from PyPI.
SGLC_E2E_QUICK=1 (sanitizer pass): registration, routing, tokenizer and metrics only."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import openai
import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("SGLC_BINARY", os.path.join(ROOT, "build", "sglc"))
if not os.path.isabs(BINARY):
    BINARY = os.path.join(ROOT, BINARY)
QUICK = os.environ.get("SGLC_E2E_QUICK") == "1"
FLEET = os.path.join(ROOT, "scripts", "fleet.sh")
ROUTER_VERSION = "0.3.2"
GOLDEN = os.path.join(ROOT, "tests", "golden", "tokenizer_smollm2.tsv")
WORKER_FLAGS = ["--max-total-tokens", "16384", "--max-running-requests", "16",
                "--decode-log-interval", "0", "--served-model-name", "smollm2"]


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def router_venv():
    """A venv with sglang-router: this interpreter's when it has it, else one made with pip."""
    try:
        import sglang_router  # noqa: F401
        return sys.prefix
    except ImportError:
        pass
    venv = os.path.join(ROOT, ".venv-router")
    py = os.path.join(venv, "bin", "python")
    if subprocess.run([py, "-c", "import sglang_router"], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q",
                            "sglang-router==" + ROUTER_VERSION], capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            pytest.skip("sglang-router==%s cannot be installed from PyPI: %s"
                        % (ROUTER_VERSION, r.stderr.strip()[-300:]))
    return venv


class Fleet:
    """scripts/fleet.sh start N in its own run dir on free loopback ports."""

    def __init__(self, venv, n, extra=()):
        self.n = n
        self.run_dir = tempfile.mkdtemp(prefix="sglc_fleet_")
        ports = free_ports(n + 2)
        self.router_port, metrics_port, self.ports = ports[0], ports[1], ports[2:]
        self.env = dict(os.environ, SGLC_BINARY=BINARY, SGLC_ROUTER_VENV=venv,
                        FLEET_READY_TIMEOUT="120")
        # consecutive ports are what fleet.sh takes; find a free run of n
        base = self._free_run(n)
        self.ports = list(range(base, base + n))
        cmd = [FLEET, "start", str(n), "--base-port", str(base), "--router-port",
               str(self.router_port), "--router-metrics-port", str(metrics_port),
               "--run-dir", self.run_dir, "--", *WORKER_FLAGS, *extra]
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=240)
        self.start_output = r.stdout + r.stderr
        if r.returncode != 0:
            self.stop()
            raise RuntimeError("fleet.sh start failed:\n" + self.start_output + self.logs())
        self.url = "http://127.0.0.1:%d" % self.router_port
        self.workers = ["http://127.0.0.1:%d" % p for p in self.ports]

    @staticmethod
    def _free_run(n):
        for _ in range(50):
            base = random.randint(20000, 60000)
            try:
                socks = []
                for p in range(base, base + n):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
                return base
            except OSError:
                continue
            finally:
                for s in socks:
                    s.close()
        raise RuntimeError("no free port range")

    def pid(self, i):
        with open(os.path.join(self.run_dir, "worker-%d.pid" % i)) as f:
            return int(f.read())

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.run_dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.run_dir, name), errors="replace") as f:
                    out.append("== %s\n%s" % (name, f.read()[-3000:]))
        return "\n".join(out)

    def fleet(self, *args, timeout=120):
        return subprocess.run([FLEET, *args, "--run-dir", self.run_dir], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def stop(self):
        r = subprocess.run([FLEET, "stop", "--run-dir", self.run_dir], env=self.env,
                           capture_output=True, text=True, timeout=120)
        logs = self.logs()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        assert r.returncode == 0, r.stdout + r.stderr
        # under ASan/UBSan a worker's report lands in its log, not in an exit status we see
        assert "Sanitizer" not in logs and "runtime error:" not in logs, logs

    def router_workers(self):
        return requests.get(self.url + "/workers", timeout=10).json()["workers"]

    def wait_healthy(self, want, timeout=30):
        deadline = time.time() + timeout
        while True:
            healthy = sorted(w["url"] for w in self.router_workers() if w["is_healthy"])
            if healthy == sorted(want):
                return
            assert time.time() < deadline, "router health %s, want %s" % (healthy, want)
            time.sleep(0.3)


def metrics(url):
    """Prometheus text -> {name: {labels-string: value}} (comments skipped)."""
    out = {}
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        out.setdefault(name, {})[labels.rstrip("}")] = float(value)
    return out


def counter(url, name):
    return sum(metrics(url).get(name, {}).values())


def assert_idle(url, timeout=30):
    """No running or queued request and every KV slot free except evictable cached prefixes."""
    deadline = time.time() + timeout
    while True:
        st = requests.get(url + "/get_server_info", timeout=30).json()["internal_states"][0]
        if st["num_running_reqs"] == st["num_queue_reqs"] == st["kv_used_tokens"] == 0:
            return st
        assert time.time() < deadline, "worker %s not idle: %r" % (url, st)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def fleet2(router_venv):
    f = Fleet(router_venv, 2)
    yield f
    f.stop()


# ---------- registration and routing ----------

def test_fleet_script_reports_pinning_and_status(fleet2):
    ncpu = os.cpu_count() or 1
    if ncpu >= 2:
        assert "each pinned to its own" in fleet2.start_output
    else:
        assert "share them" in fleet2.start_output
    r = fleet2.fleet("status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": healthy") == 2 and "2 healthy workers" in r.stdout


def test_router_registers_workers_with_metadata(fleet2):
    ws = fleet2.router_workers()
    assert sorted(w["url"] for w in ws) == sorted(fleet2.workers)
    for w in ws:
        assert w["is_healthy"]
        md = w["metadata"]
        # from /server_info and /model_info: the served name is the router's model id
        assert w["model_id"] == "smollm2" and md["served_model_name"] == "smollm2"
        assert md["model_path"].endswith(".gguf") and md["model_type"] == "llama"
        assert md["tp_size"] == "1" and md["dp_size"] == "1"


def test_worker_native_endpoints_shapes(fleet2):
    w = fleet2.workers[0]
    load = requests.get(w + "/get_load", timeout=10).json()
    assert isinstance(load, list) and len(load) == 1
    assert set(load[0]) >= {"dp_rank", "num_reqs", "num_waiting_reqs", "num_tokens"}
    assert all(isinstance(load[0][k], int) and load[0][k] >= 0 for k in load[0])
    for path in ("/server_info", "/get_server_info"):
        info = requests.get(w + path, timeout=10).json()
        assert info["served_model_name"] == "smollm2" and info["tp_size"] == 1
        assert info["disaggregation_mode"] == "null"
        assert info["internal_states"][0]["num_running_reqs"] == 0
    for path in ("/model_info", "/get_model_info"):
        mi = requests.get(w + path, timeout=10).json()
        assert mi["is_generation"] is True and mi["model_type"] == "llama"
    assert requests.get(w + "/health_generate", timeout=60).status_code == 200
    # proxied by the router
    assert requests.get(fleet2.url + "/get_server_info", timeout=10).status_code == 200
    assert requests.get(fleet2.url + "/health_generate", timeout=60).status_code == 200
    r = requests.post(fleet2.url + "/flush_cache", timeout=30).json()
    assert r["workers_flushed"] == 2


def test_openai_client_through_router(fleet2):
    c = openai.OpenAI(base_url=fleet2.url + "/v1", api_key="none", max_retries=0, timeout=120)
    assert [m.id for m in c.models.list().data] == ["smollm2"]
    r = c.chat.completions.create(model="smollm2", max_tokens=12, temperature=0,
                                  messages=[{"role": "user", "content": "What is 2+2?"}])
    assert r.choices[0].message.content and r.usage.completion_tokens <= 12
    # the same request straight to a worker gives the same greedy text
    d = openai.OpenAI(base_url=fleet2.workers[0] + "/v1", api_key="none", max_retries=0,
                      timeout=120)
    r0 = d.chat.completions.create(model="smollm2", max_tokens=12, temperature=0,
                                   messages=[{"role": "user", "content": "What is 2+2?"}])
    assert r0.choices[0].message.content == r.choices[0].message.content
    chunks = list(c.completions.create(model="smollm2", prompt="The capital of France is",
                                       max_tokens=8, temperature=0, stream=True))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    finals = [ch.choices[0].finish_reason for ch in chunks
              if ch.choices and ch.choices[0].finish_reason]
    assert text and finals in (["length"], ["stop"]), (text, finals)
    g = requests.post(fleet2.url + "/generate", timeout=60, json={
        "text": "The capital of France is", "sampling_params": {"max_new_tokens": 6,
                                                                "temperature": 0}}).json()
    assert g["meta_info"]["completion_tokens"] <= 6 and "text" in g


# ---------- the tokenizer the router loads ----------

def probe_strings():
    """The llama.cpp golden strings JSON can carry, plus seeded mixed-script Unicode."""
    out = []
    with open(GOLDEN) as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if cols[0] != "S":
                continue
            try:
                text = bytes.fromhex(cols[1]).decode("utf-8")
            except UnicodeDecodeError:
                continue
            # a JSON string with U+0000 ends at it in sglc's HTTP layer (cJSON strings are
            # NUL-terminated), so such prompts cannot be compared through /tokenize
            if text and "\x00" not in text:
                out.append(text)
    rng = random.Random(16)
    pools = ["abcXYZ ", "0123456789", " \t\n", "éüßñçø", "日本語中文", "한국어", "Ωμέγα",
             "Привет", "🙂🚀👍🏽", "’“”—…", "<|im_start|>", "<|im_end|>", "'s 're 'll"]
    for _ in range(200):
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40))))
    return out


def test_exported_tokenizer_encodes_like_the_worker(fleet2):
    tok_dir = os.path.join(fleet2.run_dir, "tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert os.path.getsize(os.path.join(tok_dir, name)) > 2
    with open(os.path.join(tok_dir, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    assert cfg["eos_token"] == "<|im_end|>" and "im_start" in cfg["chat_template"]
    texts = probe_strings()
    if QUICK:
        texts = texts[::8]
    assert len(texts) >= (60 if QUICK else 500)
    w = fleet2.workers[0]
    sess = requests.Session()
    want = [sess.post(w + "/tokenize", timeout=30, json={
        "prompt": t, "add_special_tokens": False}).json()["tokens"] for t in texts]
    # the router's Rust HF tokenizer, loaded from the exported folder (--tokenizer-path)
    got = requests.post(fleet2.url + "/v1/tokenize", timeout=60,
                        json={"model": "default", "prompt": texts}).json()["tokens"]
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    assert not bad, "router tokenizer differs on %d/%d, e.g. %r: %s vs %s" % (
        len(bad), len(texts), texts[bad[0]], got[bad[0]][:12], want[bad[0]][:12])
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return  # the router's tokenizer above is the same library in Rust
    hf = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    got_py = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    bad = [i for i in range(len(texts)) if got_py[i] != want[i]]
    assert not bad, "HF tokenizers differ on %d/%d, e.g. %r" % (len(bad), len(texts),
                                                                texts[bad[0]])
    # and decode gives the text back
    assert [hf.decode(ids, skip_special_tokens=False) for ids in want[:50]] == texts[:50]


def test_export_tokenizer_rejects_bad_input(tmp_path):
    r = subprocess.run([BINARY, "export-tokenizer", "--model-path", str(tmp_path / "nope.gguf"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode != 0 and "nope.gguf" in r.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    r = subprocess.run([BINARY, "export-tokenizer", "--model-path", str(bad), "--out",
                        str(tmp_path / "o2")], capture_output=True, text=True)
    assert r.returncode != 0 and "bad.gguf" in r.stderr
    r = subprocess.run([BINARY, "export-tokenizer"], capture_output=True, text=True)
    assert r.returncode == 2 and "--out" in r.stderr


# ---------- metrics a fleet operator scrapes ----------

def test_worker_metrics_sglang_names(fleet2):
    requests.post(fleet2.url + "/generate", timeout=60, json={
        "text": "Hello there, how", "sampling_params": {"max_new_tokens": 4, "ignore_eos": True}})
    for w in fleet2.workers:
        m = metrics(w)
        for name in ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage",
                     "sglang:cache_hit_rate", "sglang:gen_throughput", "sglang:num_used_tokens",
                     "sglang:max_total_num_tokens", "sglang:prompt_tokens_total",
                     "sglang:generation_tokens_total", "sglang:cached_tokens_total",
                     "sglang:num_requests_total", "sglang:num_aborted_requests_total"):
            assert list(m[name]) == ['model_name="smollm2"'], name
        assert m["sglang:max_total_num_tokens"]['model_name="smollm2"'] == 16384
        for h in ("time_to_first_token_seconds", "inter_token_latency_seconds",
                  "e2e_request_latency_seconds", "time_per_output_token_seconds"):
            buckets = m["sglang:%s_bucket" % h]
            assert 'le="+Inf",model_name="smollm2"' in buckets
            counts = list(buckets.values())
            assert counts == sorted(counts)  # cumulative
            assert max(counts) == m["sglang:%s_count" % h]['model_name="smollm2"']
    # the request above ran on one of them, with 4 tokens: 3 inter-token gaps, 1 TPOT sample
    total = sum(counter(w, "sglang:generation_tokens_total") for w in fleet2.workers)
    assert total >= 4


# ---------- cache affinity ----------

def bench(url, out, extra=()):
    cmd = [BINARY, "bench_serving", "--base-url", url, "--backend", "sglang",
           "--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "4",
           "--gsp-prompts-per-group", "6", "--gsp-system-prompt-len", "256",
           "--gsp-question-len", "32", "--gsp-output-len", "8", "--max-concurrency", "4",
           "--seed", "7", "--flush-cache", "--output-file", out, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(out) as f:
        rows = [json.loads(line) for line in f]
    return rows[-1]


def hit_rate(workers, run):
    before = [(counter(w, "sglang:prompt_tokens_total"), counter(w, "sglang:cached_tokens_total"),
               counter(w, "sglang:num_requests_total")) for w in workers]
    result = run()
    after = [(counter(w, "sglang:prompt_tokens_total"), counter(w, "sglang:cached_tokens_total"),
              counter(w, "sglang:num_requests_total")) for w in workers]
    prompt = sum(a[0] - b[0] for a, b in zip(after, before))
    cached = sum(a[1] - b[1] for a, b in zip(after, before))
    per_worker = [a[2] - b[2] for a, b in zip(after, before)]
    return cached / prompt, per_worker, result


@pytest.mark.skipif(QUICK, reason="traffic runs are left to the Release pass")
def test_shared_prefix_traffic_keeps_cache_affinity(fleet2, tmp_path):
    # one worker alone, then the same traffic through the router over both
    alone, _, r1 = hit_rate(fleet2.workers[:1],
                            lambda: bench(fleet2.workers[0], str(tmp_path / "alone.jsonl")))
    routed, per_worker, r2 = hit_rate(fleet2.workers,
                                      lambda: bench(fleet2.url, str(tmp_path / "routed.jsonl")))
    print("cache hit rate: one worker alone %.3f, 2 workers via router %.3f; requests per "
          "worker %s; throughput %.2f vs %.2f req/s" % (alone, routed, per_worker,
                                                        r1["request_throughput"],
                                                        r2["request_throughput"]))
    assert r1["completed"] == r2["completed"] == 24
    assert alone > 0.5  # the traffic does share prefixes
    assert routed >= 0.8 * alone, (routed, alone)
    assert all(n > 0 for n in per_worker), per_worker  # the groups were spread
    for w in fleet2.workers:
        assert_idle(w)


# ---------- a worker killed under load ----------

@pytest.mark.skipif(QUICK, reason="fault runs are left to the Release pass")
def test_worker_killed_under_load_then_restarted(fleet2):
    timeout = 60
    results = []
    lock = threading.Lock()

    def one(i):
        t0 = time.time()
        try:
            r = requests.post(fleet2.url + "/generate", timeout=timeout, json={
                "text": "Group %d shares this system prompt about topic %d. Question %d?"
                        % (i % 4, i % 4, i),
                "sampling_params": {"max_new_tokens": 24, "ignore_eos": True}})
            if r.status_code == 200:
                outcome = "ok" if r.json()["meta_info"]["completion_tokens"] == 24 else "short"
            else:
                outcome = "error %d" % r.status_code
                assert r.text  # a clean error carries a body
        except requests.ConnectionError as e:  # the router closed it: a clean failure too
            outcome = "conn " + str(e)[:60]
        with lock:
            results.append((i, outcome, time.time() - t0))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for k, t in enumerate(threads):
        t.start()
        if k == 8:
            os.kill(fleet2.pid(1), signal.SIGKILL)
        time.sleep(0.05)
    for t in threads:
        t.join(timeout + 10)
    assert not any(t.is_alive() for t in threads), "a request hung past its timeout"
    assert len(results) == 24
    assert all(o == "ok" or o.startswith(("error", "conn")) for _, o, _ in results), results
    assert all(dt < timeout + 1 for _, _, dt in results)
    ok = sum(o == "ok" for _, o, _ in results)
    assert ok >= 12, results  # the survivor served (at least) everything sent after the kill
    # the router takes the dead worker out of rotation; all traffic then succeeds
    fleet2.wait_healthy(fleet2.workers[:1])
    before = counter(fleet2.workers[0], "sglang:num_requests_total")
    for i in range(6):
        r = requests.post(fleet2.url + "/generate", timeout=timeout, json={
            "text": "Group %d shares this system prompt about topic %d. Again %d?" % (i, i, i),
            "sampling_params": {"max_new_tokens": 4}})
        assert r.status_code == 200, r.text
    assert counter(fleet2.workers[0], "sglang:num_requests_total") - before == 6
    assert_idle(fleet2.workers[0])  # no slot leaked on the survivor
    # restarted, it is healthy in the router again and gets traffic
    r = fleet2.fleet("restart", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    fleet2.wait_healthy(fleet2.workers)
    # the router's own health check (every 2 s, fleet.sh) puts it back in rotation: the
    # router lists it healthy, and it serves. Whether the cache-aware policy sends it traffic
    # soon is the router's choice (seen here: sometimes not for 30 s while both are listed
    # healthy, its circuit breaker half-open), so that is printed, not asserted.
    deadline = time.time() + 30
    healthy = False
    while not healthy and time.time() < deadline:
        ws = requests.get(fleet2.url + "/workers", timeout=10).json().get("workers", [])
        healthy = len(ws) == 2 and all(w.get("is_healthy") for w in ws)
        time.sleep(0.25)
    assert healthy, requests.get(fleet2.url + "/workers", timeout=10).text[:1500]
    r = requests.post(fleet2.workers[1] + "/generate", timeout=timeout, json={
        "text": "Back again?", "sampling_params": {"max_new_tokens": 2}})
    assert r.status_code == 200, r.text
    rng = random.Random(7)
    for i in range(20):
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(120))
        requests.post(fleet2.url + "/generate", timeout=timeout, json={
            "text": text, "sampling_params": {"max_new_tokens": 2}}).raise_for_status()
    seen = counter(fleet2.workers[1], "sglang:num_requests_total") - 1
    print("restarted worker: %d of 20 routed requests" % seen)
    for w in fleet2.workers:
        assert_idle(w)


# ---------- four workers ----------

@pytest.mark.skipif(QUICK, reason="four workers are left to the Release pass")
def test_four_workers_behind_router(router_venv, tmp_path):
    f = Fleet(router_venv, 4)
    try:
        assert len(f.router_workers()) == 4
        rate, per_worker, r = hit_rate(f.workers, lambda: bench(f.url, str(tmp_path / "b.jsonl")))
        print("4 workers: hit rate %.3f, requests per worker %s, %.2f req/s"
              % (rate, per_worker, r["request_throughput"]))
        assert r["completed"] == 24
        assert sum(n > 0 for n in per_worker) >= 2, per_worker
        assert rate > 0.5
        for w in f.workers:
            assert_idle(w)
    finally:
        f.stop()
    for i in range(4):
        with pytest.raises(requests.ConnectionError):
            requests.get(f.workers[i] + "/health", timeout=2)
