"""LoRA adapters through a real server: preloaded by name, loaded per request
from a local folder (confined to --adapter-root) or the local Hugging Face
cache, evicted under a memory budget and reloaded, named by OpenAI's `model`,
and through lorax-client unchanged. Adapters are random PEFT adapters of the
bundled model's shape, written here."""
import json
import os
import random
import struct
import subprocess
import time

import requests

from conftest import BINARY

HIDDEN, LAYERS, INTER = 192, 6, 768
SHAPES = {"attention.query_key_value": (HIDDEN, 3 * HIDDEN), "attention.dense": (HIDDEN, HIDDEN),
          "mlp.dense_h_to_4h": (HIDDEN, INTER), "mlp.dense_4h_to_h": (INTER, HIDDEN)}


def write_safetensors(path, tensors):
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def make_adapter(folder, seed, rank=4, alpha=8):
    """A PEFT LoRA adapter on all four projections of every layer."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    tensors = {}
    for layer in range(LAYERS):
        for module, (n_in, n_out) in SHAPES.items():
            prefix = f"base_model.model.gpt_neox.layers.{layer}.{module}"
            tensors[prefix + ".lora_A.weight"] = ((rank, n_in), [rng.gauss(0, 0.2) for _ in range(rank * n_in)])
            tensors[prefix + ".lora_B.weight"] = ((n_out, rank), [rng.gauss(0, 0.2) for _ in range(n_out * rank)])
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "bias": "none",
                   "target_modules": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]}, f)
    return folder


def cli_greedy(prompt, n, adapter=None):
    args = [BINARY, "generate", "--prompt", prompt, "--temperature", "0", "--max-new-tokens", str(n)]
    if adapter:
        args += ["--adapter", adapter]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def generate(server, prompt, n, **params):
    return requests.post(server.url + "/generate", json={"inputs": prompt, "parameters": {"max_new_tokens": n, **params}},
                         timeout=60)


def test_preloaded_and_local_adapters_match_the_cli(make_server, tmp_path):
    root = tmp_path / "adapters"
    a = make_adapter(str(root / "a"), seed=1)
    make_adapter(str(root / "nested" / "b"), seed=2)
    s = make_server("--adapter", f"alpha={a}", "--adapter-root", str(root))
    base = generate(s, "ROMEO:", 12).json()["generated_text"]
    with_a = generate(s, "ROMEO:", 12, adapter_id="alpha").json()["generated_text"]
    assert with_a == cli_greedy("ROMEO:", 12, a) and with_a != base
    local_b = generate(s, "ROMEO:", 12, adapter_id="nested/b", adapter_source="local")
    assert local_b.status_code == 200, local_b.text
    assert local_b.json()["generated_text"] == cli_greedy("ROMEO:", 12, str(root / "nested" / "b"))
    models = [m["id"] for m in requests.get(s.url + "/v1/models").json()["data"]]
    assert "alpha" in models and "nested/b" in models
    chat = requests.post(s.url + "/v1/completions", json={"model": "alpha", "prompt": "ROMEO:", "max_tokens": 12,
                                                          "temperature": 0}).json()
    assert chat["choices"][0]["text"] == with_a
    assert s.metric("flashneox_adapters_loaded") == 2
    assert s.metric("flashneox_kv_cache_blocks_used") == 0


def test_local_paths_stay_under_the_root(make_server, tmp_path):
    root = tmp_path / "root"
    make_adapter(str(root / "ok"), seed=3)
    outside = make_adapter(str(tmp_path / "outside"), seed=4)
    os.symlink(outside, root / "escape")
    s = make_server("--adapter-root", str(root))
    for bad, status in (("../outside", 403), (outside, 403), ("escape", 403), ("missing", 422)):
        r = generate(s, "x", 2, adapter_id=bad, adapter_source="local")
        assert r.status_code == status, (bad, r.status_code, r.text)
        assert "adapter" in r.json()["error"]
    assert generate(s, "x", 2, adapter_id="ok", adapter_source="local").status_code == 200
    off = make_server()
    r = generate(off, "x", 2, adapter_id="ok", adapter_source="local")
    assert r.status_code == 422 and "--adapter-root" in r.json()["error"]


def test_hub_adapters_resolve_offline_in_the_cache(make_server, tmp_path):
    cache = tmp_path / "hub"
    repo = cache / "models--someone--shakespeare-lora"
    make_adapter(str(repo / "snapshots" / "abc123"), seed=5)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    s = make_server(env={"HF_HUB_CACHE": str(cache)})
    r = generate(s, "ROMEO:", 8, adapter_id="someone/shakespeare-lora")
    assert r.status_code == 200, r.text
    assert r.json()["generated_text"] == cli_greedy("ROMEO:", 8, str(repo / "snapshots" / "abc123"))
    missing = generate(s, "ROMEO:", 8, adapter_id="someone/other")
    assert missing.status_code == 422 and "models--someone--other" in missing.json()["error"]
    assert generate(s, "ROMEO:", 8, adapter_id="not-a-hub-id").status_code == 422


def test_eviction_under_a_tiny_budget_and_reload(make_server, tmp_path):
    root = tmp_path / "root"
    for i in range(3):
        make_adapter(str(root / f"a{i}"), seed=10 + i)
    # One adapter is 144 KiB (kept in f16 beside the bundled f16 model): a
    # 200 KiB budget keeps one idle adapter at a time.
    s = make_server("--adapter-root", str(root), "--adapter-memory", "200KiB")
    first = [generate(s, "ROMEO:", 8, adapter_id=f"a{i}", adapter_source="local").json()["generated_text"]
             for i in range(3)]
    assert s.metric("flashneox_adapter_evictions_total") >= 2
    again = generate(s, "ROMEO:", 8, adapter_id="a0", adapter_source="local").json()["generated_text"]
    assert again == first[0]
    assert s.metric("flashneox_adapter_loads_total") >= 4
    assert s.metric("flashneox_adapters_loaded") <= 2


def test_a_broken_adapter_is_a_clear_error_and_the_server_serves_on(make_server, tmp_path):
    root = tmp_path / "root"
    bad = make_adapter(str(root / "dora"), seed=6)
    config = json.load(open(os.path.join(bad, "adapter_config.json")))
    config["use_dora"] = True
    json.dump(config, open(os.path.join(bad, "adapter_config.json"), "w"))
    os.makedirs(root / "empty")
    s = make_server("--adapter-root", str(root))
    r = generate(s, "x", 2, adapter_id="dora", adapter_source="local")
    assert r.status_code == 422 and "use_dora" in r.json()["error"]
    r = generate(s, "x", 2, adapter_id="empty", adapter_source="local")
    assert r.status_code == 422 and "adapter_config.json" in r.json()["error"]
    assert generate(s, "ROMEO:", 2).status_code == 200
    assert s.metric("flashneox_adapter_load_failures_total") == 2
    assert s.metric("flashneox_kv_cache_blocks_used") == 0
    # Nothing of the failed loads stays in memory.
    assert s.metric("flashneox_adapters_loaded") == 0 and s.metric("flashneox_adapter_memory_bytes") == 0


def test_lorax_client_with_a_local_adapter(make_server, tmp_path):
    from lorax import Client
    root = tmp_path / "root"
    make_adapter(str(root / "mine"), seed=7)
    s = make_server("--adapter-root", str(root))
    client = Client(s.url)
    out = client.generate("ROMEO:", adapter_id="mine", adapter_source="local", max_new_tokens=10)
    assert out.generated_text == cli_greedy("ROMEO:", 10, str(root / "mine"))
    streamed = "".join(r.token.text for r in client.generate_stream(
        "ROMEO:", adapter_id="mine", adapter_source="local", max_new_tokens=10) if not r.token.special)
    assert streamed == out.generated_text


def test_structured_output_with_adapters(make_server, tmp_path):
    # Constrained requests over two adapters and the base, in one batch: each valid.
    import concurrent.futures
    a = make_adapter(str(tmp_path / "a"), seed=21)
    b = make_adapter(str(tmp_path / "b"), seed=22)
    s = make_server("--adapter", f"a={a}", "--adapter", f"b={b}")
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                               "act": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["name", "act"]}

    def run(i):
        params = {"grammar": {"type": "json", "value": schema}, "do_sample": True, "seed": i, "details": True}
        if i % 3:
            params["adapter_id"] = "ab"[i % 3 - 1]
        return generate(s, "ROMEO:", 80, **params)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(6)))
    for r in results:
        assert r.status_code == 200, r.text
        assert r.json()["details"]["finish_reason"] == "eos_token", r.json()
        out = json.loads(r.json()["generated_text"])
        assert set(out) == {"name", "act"} and 1 <= out["act"] <= 5 and len(out["name"]) <= 8
    assert s.metric("flashneox_kv_cache_blocks_used") == 0
