"""LoRAX's `merged_adapters` against a NumPy reference written here: the
reference merges two random adapters' lora_A and lora_B tensors with each
strategy (LoRAX's merge code, with DARE's rescale applied and DARE's drop
drawn from flashneox's documented splitmix64 function), saves the result as an
ordinary PEFT adapter, and the server's merge must generate what that adapter
generates. Also: the merge is cached by its definition, refusals are 422s,
and lorax-client's MergedAdapters works unchanged."""
import json
import os

import numpy as np
import requests

from test_adapters import HIDDEN, INTER, LAYERS, generate, write_safetensors

# flashneox's module order (LoraModule) and PEFT's module paths.
MODULES = [("attention.query_key_value", HIDDEN, 3 * HIDDEN), ("attention.dense", HIDDEN, HIDDEN),
           ("mlp.dense_h_to_4h", HIDDEN, INTER), ("mlp.dense_4h_to_h", INTER, HIDDEN)]
SUFFIX = {0: "query_key_value", 1: "dense", 2: "dense_h_to_4h", 3: "dense_4h_to_h"}
RANK = 4


def random_adapter(seed, modules, alpha):
    """{(layer, module): (A [r, in], B [out, r])} in float32, and its config."""
    rng = np.random.default_rng(seed)
    weights = {}
    for layer in range(LAYERS):
        for m in modules:
            _, n_in, n_out = MODULES[m]
            weights[(layer, m)] = (rng.normal(0, 0.2, (RANK, n_in)).astype(np.float32),
                                   rng.normal(0, 0.2, (n_out, RANK)).astype(np.float32))
    config = {"peft_type": "LORA", "r": RANK, "lora_alpha": alpha, "bias": "none",
              "target_modules": [SUFFIX[m] for m in modules]}
    return weights, config


def save_adapter(folder, weights, config):
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for (layer, m), (a, b) in weights.items():
        prefix = f"base_model.model.gpt_neox.layers.{layer}.{MODULES[m][0]}"
        tensors[prefix + ".lora_A.weight"] = (a.shape, a.reshape(-1).tolist())
        tensors[prefix + ".lora_B.weight"] = (b.shape, b.reshape(-1).tolist())
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f)


def splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dare_keep(part, layer, module, tensor, n, density):
    ident = (np.uint64(part) << np.uint64(56)) ^ (np.uint64(layer) << np.uint64(44)) ^ \
            (np.uint64(module) << np.uint64(42)) ^ (np.uint64(tensor) << np.uint64(40))
    u = splitmix64(np.arange(n, dtype=np.uint64) ^ ident) >> np.uint64(11)
    return u.astype(np.float64) < density * 2.0 ** 53


def magnitude_prune(t, density):
    if density >= 1:
        return t
    flat = t.reshape(-1).copy()
    keep = int(density * flat.size)
    order = np.argsort(-np.abs(flat), kind="stable")
    flat[order[keep:]] = 0
    return flat.reshape(t.shape)


def merge_tensors(tensors, weights, strategy, density, method):
    stack = np.stack([t.astype(np.float64) for t in tensors])
    w = np.asarray(weights, dtype=np.float64).reshape(-1, *([1] * (stack.ndim - 1)))
    if strategy in ("linear", "dare_linear"):
        return (stack * w).sum(axis=0).astype(np.float32)
    sign = np.sign(stack)
    votes = stack.sum(axis=0) if method == "total" else sign.sum(axis=0)
    mask = sign == np.where(votes >= 0, 1.0, -1.0)
    agreeing = np.maximum(mask.sum(axis=0), 1)
    return ((stack * w * mask).sum(axis=0) / agreeing).astype(np.float32)


def reference_merge(parts, weights, strategy, density, method):
    merged = {}
    keys = sorted({k for p in parts for k in p})
    for layer, m in keys:
        a_list, b_list, w_list = [], [], []
        for i, p in enumerate(parts):
            if (layer, m) not in p:
                continue
            a, b = p[(layer, m)]
            if strategy.startswith("dare") and density < 1:
                rescale = np.float32(1.0 / density)
                a = np.where(dare_keep(i, layer, m, 0, a.size, density).reshape(a.shape), a * rescale, 0).astype(np.float32)
                b = np.where(dare_keep(i, layer, m, 1, b.size, density).reshape(b.shape), b * rescale, 0).astype(np.float32)
            if strategy == "ties":
                a, b = magnitude_prune(a, density), magnitude_prune(b, density)
            a_list.append(a)
            b_list.append(b)
            w_list.append(weights[i])
        merged[(layer, m)] = (merge_tensors(a_list, w_list, strategy, density, method),
                              merge_tensors(b_list, w_list, strategy, density, method))
    return merged


CASES = [("linear", 1.0, "total"), ("ties", 0.5, "total"), ("ties", 0.3, "frequency"),
         ("dare_linear", 0.7, "total"), ("dare_ties", 0.6, "frequency")]
WEIGHTS = [0.7, 1.3]


def setup_adapters(root):
    # p: every projection; q: two of them, with another alpha (the merge takes p's scale).
    p, p_config = random_adapter(21, [0, 1, 2, 3], alpha=8)
    q, q_config = random_adapter(22, [0, 3], alpha=16)
    save_adapter(str(root / "p"), p, p_config)
    save_adapter(str(root / "q"), q, q_config)
    for strategy, density, method in CASES:
        merged = reference_merge([p, q], WEIGHTS, strategy, density, method)
        save_adapter(str(root / f"ref-{strategy}-{method}"), merged, p_config)


def details(server, **params):
    r = generate(server, "ROMEO:", 10, details=True, **params)
    assert r.status_code == 200, r.text
    return [(t["id"], t["logprob"]) for t in r.json()["details"]["tokens"]]


def test_every_strategy_matches_the_numpy_reference(make_server, tmp_path):
    root = tmp_path / "root"
    setup_adapters(root)
    # f32 weights keep the adapters in f32, so the merge is compared exactly
    # (beside 16-bit weights adapters are kept in f16, and a merge of rounded
    # parts rounds differently from the reference's).
    s = make_server("--adapter-root", str(root), "--dtype", "f32")
    plain_p = details(s, adapter_id="p", adapter_source="local")
    for strategy, density, method in CASES:
        spec = {"ids": ["p", "q"], "weights": WEIGHTS, "merge_strategy": strategy, "density": density,
                "majority_sign_method": method}
        got = details(s, merged_adapters=spec, adapter_source="local")
        want = details(s, adapter_id=f"ref-{strategy}-{method}", adapter_source="local")
        assert [t for t, _ in got] == [t for t, _ in want], strategy
        assert max(abs(x - y) for (_, x), (_, y) in zip(got, want)) < 1e-4, strategy
        assert got != plain_p, strategy
    # The same definition again is served from the cache: no new load.
    loads = s.metric("flashneox_adapter_loads_total")
    spec = {"ids": ["p", "q"], "weights": WEIGHTS, "merge_strategy": "ties", "density": 0.5}
    details(s, merged_adapters=spec, adapter_source="local")
    assert s.metric("flashneox_adapter_loads_total") == loads
    # Merged adapters are not listed as models; their parts are.
    models = [m["id"] for m in requests.get(s.url + "/v1/models").json()["data"]]
    assert "p" in models and not any("merge" in m or "|" in m for m in models)
    assert s.metric("flashneox_kv_cache_blocks_used") == 0


def test_merge_refusals_are_clear_and_the_server_serves_on(make_server, tmp_path):
    root = tmp_path / "root"
    setup_adapters(root)
    other, config = random_adapter(23, [0], alpha=8)
    config["r"] = 2
    save_adapter(str(root / "rank2"), {k: (a[:2], b[:, :2]) for k, (a, b) in other.items()}, config)
    s = make_server("--adapter-root", str(root))
    bad = [
        ({"ids": []}, "ids"),
        ({"ids": ["p", "q"], "weights": [1.0]}, "weights"),
        ({"ids": ["p"], "merge_strategy": "average"}, "merge_strategy"),
        ({"ids": ["p"], "density": 1.5}, "density"),
        ({"ids": ["p"], "majority_sign_method": "most"}, "majority_sign_method"),
        ({"ids": ["p"], "colour": 1}, "colour"),
        ({"ids": ["p", "nope"]}, "nope"),
        ({"ids": ["p", "rank2"]}, "rank"),
    ]
    for spec, word in bad:
        r = generate(s, "x", 2, merged_adapters=spec, adapter_source="local")
        assert r.status_code == 422 and word in r.json()["error"], (spec, r.status_code, r.text)
    r = generate(s, "x", 2, adapter_id="p", merged_adapters={"ids": ["q"]}, adapter_source="local")
    assert r.status_code == 422 and "at most one" in r.json()["error"]
    assert generate(s, "ROMEO:", 2, merged_adapters={"ids": ["p", "q"]}, adapter_source="local").status_code == 200
    assert s.metric("flashneox_kv_cache_blocks_used") == 0


def test_lorax_client_merged_adapters(make_server, tmp_path):
    from lorax import Client, MergedAdapters
    root = tmp_path / "root"
    setup_adapters(root)
    s = make_server("--adapter-root", str(root), "--dtype", "f32")
    client = Client(s.url)
    merged = MergedAdapters(ids=["p", "q"], weights=WEIGHTS, merge_strategy="ties", density=0.5,
                            majority_sign_method="total")
    out = client.generate("ROMEO:", merged_adapters=merged, adapter_source="local", max_new_tokens=10)
    want = client.generate("ROMEO:", adapter_id="ref-ties-total", adapter_source="local", max_new_tokens=10)
    assert out.generated_text == want.generated_text
