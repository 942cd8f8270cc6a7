"""The command lines of SGLang's Apple Silicon page (the seed of sglc, quoted below verbatim from
shared/reference/sglang-apple-metal-doc.txt) run as they are, with `python -m sglang.X` replaced by
`sglc X` and the placeholders by local models:

- `<MODEL_ID_OR_PATH>` becomes the default GGUF;
- the hub ids `mlx-community/Qwen3-0.6B-4bit` and `Qwen/Qwen3-0.6B` are resolved the way SGLang
  resolves them offline, from a Hugging Face cache ($HF_HUB_CACHE) that this test fills with the
  default model as an MLX 4-bit folder and as a float folder.

Also: SGLang's other common flags are accepted, the ones with no effect on the CPU are logged once,
unknown flags and values sglc cannot honour fail with one line naming them."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest
import requests

from test_server import BINARY, QUICK, ROOT, free_port

GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
HF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct-hf")

# verbatim from the seed page (line continuations joined)
SEED_SERVE = [
    "SGLANG_USE_MLX=1 python -m sglang.launch_server --model <MODEL_ID_OR_PATH> "
    "--disable-cuda-graph --host 0.0.0.0",
    "SGLANG_USE_MLX=1 python -m sglang.launch_server --model-path mlx-community/Qwen3-0.6B-4bit "
    "--disable-cuda-graph",
    "SGLANG_USE_MLX=1 python -m sglang.launch_server --model-path Qwen/Qwen3-0.6B "
    "--quantization mlx_q4 --disable-cuda-graph",
]
SEED_BENCH = [
    "SGLANG_USE_MLX=1 python -m sglang.bench_one_batch --model-path <MODEL_ID_OR_PATH> "
    "--disable-cuda-graph --tp-size 1 --batch-size 1 --input-len 60 --output-len 10",
    "SGLANG_USE_MLX=1 python -m sglang.bench_offline_throughput --model-path <MODEL_ID_OR_PATH> "
    "--disable-cuda-graph --num-prompts 1 --disable-overlap-schedule",
    "SGLANG_USE_MLX=1 python -m sglang.bench_offline_throughput --model-path <MODEL_ID_OR_PATH> "
    "--disable-cuda-graph --num-prompts 1",
]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A Hugging Face cache with the two hub ids of the seed, laid out as huggingface_hub lays it
    out (models--ORG--NAME/refs/main naming snapshots/<hash>)."""
    hub = tmp_path_factory.mktemp("hub")

    def add(repo_id, make):
        d = hub / ("models--" + repo_id.replace("/", "--"))
        (d / "refs").mkdir(parents=True)
        (d / "refs" / "main").write_text("0123456789abcdef\n")
        snap = d / "snapshots" / "0123456789abcdef"
        snap.parent.mkdir(parents=True)
        make(snap)

    add("Qwen/Qwen3-0.6B", lambda snap: shutil.copytree(HF, snap))
    add("mlx-community/Qwen3-0.6B-4bit", lambda snap: subprocess.run(
        [BINARY, "quantize", "--model-path", HF, "--bits", "4", "--group-size", "64", "--out",
         str(snap)], check=True, capture_output=True, timeout=300))
    return str(hub)


def to_argv(line):
    """`VAR=1 python -m sglang.X args` -> (env additions, [sglc, X, args...])."""
    words = shlex.split(line.replace("<MODEL_ID_OR_PATH>", GGUF))
    env = {}
    while "=" in words[0]:
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words[:2] == ["python", "-m"] and words[2].startswith("sglang."), line
    return env, [BINARY, words[2][len("sglang."):], *words[3:]]


def seed_env(extra, hub):
    env = dict(os.environ, **extra)
    env["SGLANG_MLX_USE_CUSTOM_ROPE"] = "1"  # the seed's other variable, set for every command
    env["HF_HUB_CACHE"] = hub
    return env


def wait_healthy(proc, url, log):
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError("server exited: " + log.read())
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not become healthy")


def stop(proc, log):
    """SIGTERM; the exit status and the server's whole log."""
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(120)
    log.seek(0)
    return rc, log.read()


@pytest.mark.parametrize("line", SEED_SERVE)
def test_seed_launch_server(line, hub_cache, tmp_path):
    env, argv = to_argv(line)
    # the seed's commands listen on SGLang's default port, 30000
    url = "http://127.0.0.1:30000"
    log = open(tmp_path / "log", "w+")
    proc = subprocess.Popen(argv, env=seed_env(env, hub_cache), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_healthy(proc, url, log)
        r = requests.post(url + "/generate", json={
            "text": "The capital of France is",
            "sampling_params": {"max_new_tokens": 8, "temperature": 0}}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["meta_info"]["completion_tokens"] == 8
        r = requests.post(url + "/v1/chat/completions", json={
            "model": "default", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 8}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        info = requests.get(url + "/get_server_info", timeout=10).json()
        assert info["disable_cuda_graph"] is True and info["tp_size"] == 1
        assert info["base_gpu_id"] == 0 and info["gpu_id_step"] == 1
        if "--host 0.0.0.0" in line:
            assert info["host"] == "0.0.0.0"
    finally:
        rc, out = stop(proc, log)
    assert rc == 0, out
    # accepted, and said once that it does nothing on the CPU; on a GPU it switches graphs off
    assert_cuda_graph_flag(out)
    assert "SGLANG_USE_MLX=1" in out and "custom RoPE on" in out, out
    if "mlx-community" in line:
        assert "using the Hugging Face cache copy" in out, out
    if "--quantization mlx_q4" in line:
        # the seed's expected log lines (sglc says "weight memory" where MLX says "active mem")
        assert re.search(r"Quantizing (MLX )?model on-the-fly: bits=4 group_size=64 "
                         r"\(preset=mlx_q4\)", out), out
        assert re.search(r"Quantization complete in [0-9.]+s — [a-z ]+: [0-9.]+ GB -> [0-9.]+ GB "
                         r"\([0-9.]+% reduction\)", out), out


def assert_cuda_graph_flag(out):
    """--disable-cuda-graph: one no-effect line on the CPU; on the GPU (the default device when
    one is visible, said at start) it acts, so no such line."""
    m = re.search(r"device: (\S+) \(", out)
    if m and m.group(1) == "cuda":
        assert "no CUDA graphs" not in out, out
    else:
        assert out.count("--disable-cuda-graph: no CUDA graphs on device cpu") == 1, out


@pytest.mark.skipif(QUICK, reason="benchmarks run in the Release e2e pass (minutes under ASan)")
@pytest.mark.parametrize("line", SEED_BENCH)
def test_seed_benchmarks(line, hub_cache):
    env, argv = to_argv(line)
    r = subprocess.run(argv, env=seed_env(env, hub_cache), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_cuda_graph_flag(r.stdout + r.stderr)
    if "bench_one_batch" in line:
        assert re.search(r"^Prefill\. latency: [0-9.]+ s, throughput: +[0-9.]+ token/s$",
                         r.stdout, re.M), r.stdout
        assert len(re.findall(r"^Decode \d\. Batch size: 1,", r.stdout, re.M)) == 5, r.stdout
        assert re.search(r"^Total\. latency: +[0-9.]+ s", r.stdout, re.M), r.stdout
    else:
        assert "Offline Throughput Benchmark Result" in r.stdout, r.stdout
        assert re.search(r"Successful requests: +1$", r.stdout, re.M), r.stdout
        overlap_off = "--disable-overlap-schedule" in line
        assert ("overlap schedule off" in r.stderr) == overlap_off, r.stderr


COMMON_FLAGS = [
    "--cuda-graph-max-bs", "8", "--cuda-graph-bs", "1", "2", "4", "--tp", "1", "--dp-size", "1",
    "--trust-remote-code", "--dtype", "auto", "--kv-cache-dtype", "auto", "--context-length",
    "4096", "--log-level", "info", "--enable-metrics", "--watchdog-timeout", "600",
    "--stream-interval", "1", "--attention-backend", "triton", "--sampling-backend", "pytorch",
    "--grammar-backend", "xgrammar", "--page-size", "1", "--load-format", "auto",
    "--tokenizer-mode", "auto", "--enable-torch-compile", "--disable-custom-all-reduce",
]


def test_common_sglang_flags_accepted_and_logged(tmp_path):
    """SGLang's usual flags start the server; each no-effect flag is logged exactly once."""
    log = open(tmp_path / "log", "w+")
    from test_server import free_port
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model-path", GGUF, "--port", str(port),
                             "--max-total-tokens", "8192", "--tokenizer-path", HF,
                             *COMMON_FLAGS], stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_healthy(proc, url, log)
        info = requests.get(url + "/get_server_info", timeout=10).json()
        assert info["context_length"] == 4096 and info["cuda_graph_max_bs"] == 8
        assert info["tokenizer_path"] == HF and info["watchdog_timeout"] == 600
        assert requests.get(url + "/get_model_info", timeout=10).status_code == 200
        r = requests.post(url + "/generate", json={"text": "Hello", "sampling_params": {
            "max_new_tokens": 4, "temperature": 0}}, timeout=120)
        assert r.status_code == 200, r.text
    finally:
        rc, out = stop(proc, log)
    assert rc == 0, out
    m = re.search(r"device: (\S+) \(", out)
    on_gpu = bool(m) and m.group(1) == "cuda"
    no_effect = ["--cuda-graph-bs", "--attention-backend", "--sampling-backend",
                 "--trust-remote-code", "--enable-metrics", "--enable-torch-compile",
                 "--disable-custom-all-reduce", "--grammar-backend"]
    if not on_gpu:  # on a GPU it sizes the decode graphs
        no_effect.append("--cuda-graph-max-bs")
    for flag in no_effect:
        assert len(re.findall("^.*%s: " % re.escape(flag), out, re.M)) == 1, (flag, out)
    # flags that act are not reported as doing nothing
    for flag in ("--context-length", "--watchdog-timeout", "--tp-size", "--dtype"):
        assert "%s: no effect" % flag not in out, (flag, out)


@pytest.mark.parametrize("cmd", ["serve", "bench_one_batch", "bench_offline_throughput"])
@pytest.mark.parametrize("args,needle", [
    (["--tp-size", "16"], "--tp-size 16: tensor parallelism spans the GPUs of one host"),
    (["--tp", "9"], "--tp 9: tensor parallelism spans the GPUs of one host"),
    (["--dp-size", "2"], "sglang-router"),
    (["--kv-cache-dtype", "fp8_e5m2"], "fp8"),
    (["--attention-backend", "nonsense"], "--attention-backend: 'nonsense' is not supported"),
    (["--no-such-sglang-flag"], "unknown option '--no-such-sglang-flag'"),
    (["--disable-cuda-graph=1"], "--disable-cuda-graph takes no value"),
    (["--base-gpu-id", "-1"], "--base-gpu-id"),
    (["--gpu-id-step", "0"], "--gpu-id-step"),
])
def test_refused_with_one_line(cmd, args, needle):
    r = subprocess.run([BINARY, cmd, "--model-path", GGUF, *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["serve", "bench_one_batch", "bench_offline_throughput"])
def test_tp_size_the_model_does_not_split(cmd):
    # the default model's 9 attention heads split 3 ways (test_tp_model), not 2: refused at load
    port = ["--port", str(free_port())] if cmd == "serve" else []
    r = subprocess.run([BINARY, cmd, "--model-path", GGUF, "--device", "cpu", "--tp-size", "2",
                        *port], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "--tp-size 2: the model's 9 attention heads do not split 2 ways" in last, r.stderr


@pytest.mark.parametrize("cmd", ["bench_one_batch", "bench_offline_throughput"])
def test_base_gpu_id_past_the_visible_gpus(cmd):
    # SGLang's --base-gpu-id picks the first GPU; one that is not there is refused at load with
    # one line (on a machine with no GPU, that there is none)
    r = subprocess.run([BINARY, cmd, "--model-path", GGUF, "--device", "cuda", "--base-gpu-id",
                        "64"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert ("GPU 64 requested (--base-gpu-id)" in last or "no CUDA GPU visible" in last), r.stderr


def test_hub_id_not_in_cache_says_so(tmp_path):
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path))
    r = subprocess.run([BINARY, "bench_one_batch", "--model-path", "Qwen/Qwen3-0.6B"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "not in the Hugging Face cache" in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["serve", "bench_one_batch", "bench_offline_throughput"])
def test_help_groups_like_sglang(cmd):
    r = subprocess.run([BINARY, cmd, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for group in ("Model and tokenizer:", "Memory and scheduling:", "Runtime options:",
                  "Kernel backend:", "Optimization/debug options:"):
        assert "\n" + group + "\n" in r.stdout, (group, r.stdout)
    for flag in ("--disable-cuda-graph", "--tp-size", "--watchdog-timeout", "--reasoning-parser"):
        assert flag in r.stdout


def test_watchdog_timeout_ends_a_stuck_process(tmp_path):
    """--watchdog-timeout: a forward step longer than the limit ends the process (SGLang's
    watchdog), here with a limit no prefill can meet."""
    from test_server import free_port
    port = free_port()
    log = open(tmp_path / "log", "w+")
    proc = subprocess.Popen([BINARY, "serve", "--model-path", GGUF, "--port", str(port),
                             "--max-total-tokens", "8192", "--watchdog-timeout", "0.001"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_healthy(proc, url, log)
        try:
            requests.post(url + "/generate", json={"text": "word " * 1500, "sampling_params": {
                "max_new_tokens": 64}}, timeout=120)
        except requests.RequestException:
            pass  # the process may end before it answers
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    out = log.read()
    assert rc != 0, out
    assert "watchdog: a forward step has run for" in out, out
