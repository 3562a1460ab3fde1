#!/usr/bin/env python3
"""flashneox against the engines a user would pick instead, side by side in one
run, on random weights of a real Pythia shape: llama.cpp (llama-cpp-python,
GGUF F16, Q8_0 and Q4_0 written with the `gguf` package, every matrix in
that type, the head included, as flashneox's --dtype keeps it; Q4_K_M made
from the F16 file by llama.cpp's own quantizer, which keeps some matrices at
Q6_K as users get it) and CTranslate2 (a model
built from the same weights through its Python spec API). Same shape, same
weights, same thread count, same prompt and generation lengths.

    make bench-peers                      # sets up the venv, builds, runs both shapes
    python bench/compare_peers.py --config bench/configs/pythia-160m.json [--threads 2]
        [--prompt 128] [--new 128] [--rounds 3] [--batch 1] [--engines flashneox-f16,llama-f16]
    make bench-race                       # flashneox vs llama.cpp by context length and batch

Each engine runs in its own process, alternately (A B C A B C ...), and the
table reports the median over rounds and flashneox's speed over each peer's
(above 1: flashneox is faster).
Decode is greedy; prefill is one prompt of --prompt tokens per sequence. With
--batch N, N sequences decode together (llama.cpp through its batched
llama_decode, one token of every sequence per call, as its batched-bench does;
flashneox's engine, continuous batching) and tokens/s are aggregate; the
single-sequence peers (CTranslate2, transformers) run only at batch 1.
flashneox keeps its KV cache in f16 here, as llama.cpp does by default.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "flashneox")
TOKENIZER = os.path.join(ROOT, "tests", "data", "gpt-neox-20b-tokenizer.json")


# ---------------------------------------------------------------- weights
def random_weights(cfg, seed=1):
    rng = np.random.default_rng(seed)
    h, i, v, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]

    def rand(*shape):
        return (rng.random(shape, dtype=np.float32) * 2 - 1) * 0.0346

    w = {"gpt_neox.embed_in.weight": rand(v, h), "embed_out.weight": rand(v, h),
         "gpt_neox.final_layer_norm.weight": np.ones(h, np.float32),
         "gpt_neox.final_layer_norm.bias": np.zeros(h, np.float32)}
    for l in range(L):
        p = f"gpt_neox.layers.{l}."
        for ln in ("input_layernorm", "post_attention_layernorm"):
            w[p + ln + ".weight"] = np.ones(h, np.float32)
            w[p + ln + ".bias"] = np.zeros(h, np.float32)
        w[p + "attention.query_key_value.weight"] = rand(3 * h, h)
        w[p + "attention.query_key_value.bias"] = np.zeros(3 * h, np.float32)
        w[p + "attention.dense.weight"] = rand(h, h)
        w[p + "attention.dense.bias"] = np.zeros(h, np.float32)
        w[p + "mlp.dense_h_to_4h.weight"] = rand(i, h)
        w[p + "mlp.dense_h_to_4h.bias"] = np.zeros(i, np.float32)
        w[p + "mlp.dense_4h_to_h.weight"] = rand(h, i)
        w[p + "mlp.dense_4h_to_h.bias"] = np.zeros(h, np.float32)
    return w


def write_safetensors(path, tensors, dtype):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        a = t.astype(np.float16 if (dtype == "F16" and t.ndim == 2) else np.float32)
        b = a.tobytes()
        header[name] = {"dtype": "F16" if a.dtype == np.float16 else "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_gguf(path, cfg, w, qtype):
    import gguf
    tok = json.load(open(TOKENIZER, encoding="utf-8"))
    vocab = {**tok["model"]["vocab"], **{a["content"]: a["id"] for a in tok["added_tokens"]}}
    tokens = [f"<pad_{k}>" for k in range(cfg["vocab_size"])]
    for t, k in vocab.items():
        if k < len(tokens):
            tokens[k] = t
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    h, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    head = h // cfg["num_attention_heads"]
    g = gguf.GGUFWriter(path, "gptneox")
    g.add_context_length(cfg["max_position_embeddings"])
    g.add_embedding_length(h)
    g.add_block_count(L)
    g.add_feed_forward_length(cfg["intermediate_size"])
    g.add_rope_dimension_count(int(head * cfg["rotary_pct"]))
    g.add_head_count(cfg["num_attention_heads"])
    g.add_parallel_residual(cfg.get("use_parallel_residual", True))
    g.add_layer_norm_eps(cfg["layer_norm_eps"])
    g.add_tokenizer_model("gpt2")
    g.add_token_list(tokens)
    g.add_token_types([1] * len(tokens))
    g.add_token_merges(merges)
    g.add_bos_token_id(0)
    g.add_eos_token_id(0)

    def matrix(name, a):
        if qtype in ("Q8_0", "Q4_0"):
            kind = getattr(gguf.GGMLQuantizationType, qtype)
            g.add_tensor(name, gguf.quants.quantize(a, kind), raw_dtype=kind)
        else:
            g.add_tensor(name, a.astype(np.float16))

    g.add_tensor("token_embd.weight", w["gpt_neox.embed_in.weight"].astype(np.float16))
    for l in range(L):
        p = f"gpt_neox.layers.{l}."
        g.add_tensor(f"blk.{l}.attn_norm.weight", w[p + "input_layernorm.weight"])
        g.add_tensor(f"blk.{l}.attn_norm.bias", w[p + "input_layernorm.bias"])
        matrix(f"blk.{l}.attn_qkv.weight", w[p + "attention.query_key_value.weight"])
        g.add_tensor(f"blk.{l}.attn_qkv.bias", w[p + "attention.query_key_value.bias"])
        matrix(f"blk.{l}.attn_output.weight", w[p + "attention.dense.weight"])
        g.add_tensor(f"blk.{l}.attn_output.bias", w[p + "attention.dense.bias"])
        g.add_tensor(f"blk.{l}.ffn_norm.weight", w[p + "post_attention_layernorm.weight"])
        g.add_tensor(f"blk.{l}.ffn_norm.bias", w[p + "post_attention_layernorm.bias"])
        matrix(f"blk.{l}.ffn_up.weight", w[p + "mlp.dense_h_to_4h.weight"])
        g.add_tensor(f"blk.{l}.ffn_up.bias", w[p + "mlp.dense_h_to_4h.bias"])
        matrix(f"blk.{l}.ffn_down.weight", w[p + "mlp.dense_4h_to_h.weight"])
        g.add_tensor(f"blk.{l}.ffn_down.bias", w[p + "mlp.dense_4h_to_h.bias"])
    g.add_tensor("output_norm.weight", w["gpt_neox.final_layer_norm.weight"])
    g.add_tensor("output_norm.bias", w["gpt_neox.final_layer_norm.bias"])
    matrix("output.weight", w["embed_out.weight"])
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


def quantize_q4_k_m(source, path):
    """llama.cpp's own Q4_K_M quantization of an F16 GGUF (as `llama-quantize`)."""
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = os.cpu_count()
    if llama_cpp.llama_model_quantize(source.encode(), path.encode(), params) != 0:
        raise RuntimeError("llama_model_quantize failed")


def write_ctranslate2(path, cfg, w):
    from ctranslate2.specs import common_spec, transformer_spec
    h, L, heads = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    head = h // heads
    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        L, heads, pre_norm=True, activation=common_spec.Activation.GELU,
        rotary_dim=int(head * cfg["rotary_pct"]), rotary_interleave=False,
        rotary_base=cfg.get("rotary_emb_base", 10000), parallel_residual=cfg.get("use_parallel_residual", True),
        shared_layer_norm=False)
    dec = spec.decoder
    dec.scale_embeddings = False
    dec.embeddings.weight = w["gpt_neox.embed_in.weight"]
    dec.projection.weight = w["embed_out.weight"]
    dec.layer_norm.gamma = w["gpt_neox.final_layer_norm.weight"]
    dec.layer_norm.beta = w["gpt_neox.final_layer_norm.bias"]
    for l, layer in enumerate(dec.layer):
        p = f"gpt_neox.layers.{l}."
        # CTranslate2 wants q, k, v stacked [3, heads, d]; GPT-NeoX has [heads, 3, d].
        qkv = w[p + "attention.query_key_value.weight"].reshape(heads, 3, head, h).transpose(1, 0, 2, 3).reshape(3 * h, h)
        layer.self_attention.linear[0].weight = np.ascontiguousarray(qkv)
        layer.self_attention.linear[0].bias = w[p + "attention.query_key_value.bias"]
        layer.self_attention.linear[1].weight = w[p + "attention.dense.weight"]
        layer.self_attention.linear[1].bias = w[p + "attention.dense.bias"]
        layer.input_layer_norm.gamma = w[p + "input_layernorm.weight"]
        layer.input_layer_norm.beta = w[p + "input_layernorm.bias"]
        layer.post_attention_layer_norm.gamma = w[p + "post_attention_layernorm.weight"]
        layer.post_attention_layer_norm.beta = w[p + "post_attention_layernorm.bias"]
        layer.ffn.linear_0.weight = w[p + "mlp.dense_h_to_4h.weight"]
        layer.ffn.linear_0.bias = w[p + "mlp.dense_h_to_4h.bias"]
        layer.ffn.linear_1.weight = w[p + "mlp.dense_4h_to_h.weight"]
        layer.ffn.linear_1.bias = w[p + "mlp.dense_4h_to_h.bias"]
    spec.register_vocabulary([f"t{k}" for k in range(cfg["vocab_size"])])
    spec.validate()
    spec.optimize(quantization="float16")
    os.makedirs(path, exist_ok=True)
    spec.save(path)


# ---------------------------------------------------------------- runners (one process each)
def without_repacked_weights():
    """llama.cpp's repacked weight buffers (its AMX / interleaved Q8_0 layouts)
    crash with a segfault on this project's KVM guest, which reports AMX-INT8;
    every llama.cpp run loads its weights as stored (`--no-repack`). F16 has no
    repacked form, so only Q8_0 is affected."""
    import llama_cpp
    import llama_cpp.llama as high_level
    default = llama_cpp.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p
    high_level.llama_cpp.llama_model_default_params = params


def run_llama(args):
    import llama_cpp
    from llama_cpp import Llama
    without_repacked_weights()
    if args.batch > 1:
        return run_llama_batched(args)

    def last_logits():
        # Llama.scores is filled only with logits_all=True (which would make
        # llama.cpp compute every prompt row's logits): read the last row directly.
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))

    llm = Llama(model_path=args.path, n_threads=args.threads, n_threads_batch=args.threads,
                n_ctx=args.prompt + args.new + 8, n_batch=args.prompt + args.new + 8, verbose=False)
    prompt = list(np.random.default_rng(3).integers(2, 50000, args.prompt))
    llm.eval(prompt[:8])  # warm-up
    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    prefill = time.perf_counter() - start
    token = int(np.argmax(last_logits()))
    start = time.perf_counter()
    for _ in range(args.new - 1):
        llm.eval([token])
        token = int(np.argmax(last_logits()))
    decode = time.perf_counter() - start
    return {"prefill_tokens_per_s": args.prompt / prefill, "decode_tokens_per_s": (args.new - 1) / decode}


def run_llama_batched(args):
    """`batch` sequences decoded together, llama.cpp's batched decoding (one
    llama_decode per step with a token of every sequence), as its
    batched-bench does."""
    import llama_cpp
    from llama_cpp import Llama
    per_seq = (args.prompt + args.new + 8 + 255) // 256 * 256
    llm = Llama(model_path=args.path, n_ctx=64, verbose=False)  # loads the model; Llama has no n_seq_max
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = args.batch * per_seq  # per_seq cells for each sequence
    params.n_batch = params.n_ubatch = max(512, args.batch)
    params.n_seq_max = args.batch
    params.n_threads = params.n_threads_batch = args.threads
    ctx, vocab = llama_cpp.llama_init_from_model(llm._model.model, params), llm.n_vocab()
    if not ctx:
        raise RuntimeError("llama.cpp could not create a batched context")
    rng = np.random.default_rng(3)
    prompts = [list(rng.integers(2, 50000, args.prompt)) for _ in range(args.batch)]
    chunk = max(512, args.batch)
    batch = llama_cpp.llama_batch_init(chunk, 0, args.batch)

    def decode(items):  # items: (token, pos, seq, wants_logits)
        for begin in range(0, len(items), chunk):
            part = items[begin:begin + chunk]
            batch.n_tokens = len(part)
            for i, (tok, pos, seq, want) in enumerate(part):
                batch.token[i] = int(tok)
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = want
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
        return len(items[-chunk:]) if items else 0

    def argmax(i):
        return int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(vocab,))))

    start = time.perf_counter()
    next_tokens = []
    for s, prompt in enumerate(prompts):  # each prompt's last row keeps its logits
        decode([(t, p, s, p == args.prompt - 1) for p, t in enumerate(prompt)])
        next_tokens.append(argmax(-1))
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for step in range(args.new - 1):
        decode([(next_tokens[s], args.prompt + step, s, True) for s in range(args.batch)])
        next_tokens = [argmax(s) for s in range(args.batch)]
    decode_s = time.perf_counter() - start
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return {"prefill_tokens_per_s": args.batch * args.prompt / prefill,
            "decode_tokens_per_s": args.batch * (args.new - 1) / decode_s}


def run_ct2(args):
    import ctranslate2
    gen = ctranslate2.Generator(args.path, device="cpu", compute_type=args.compute_type,
                                intra_threads=args.threads, inter_threads=1)
    prompt = [f"t{k}" for k in np.random.default_rng(3).integers(2, 50000, args.prompt)]
    gen.generate_batch([prompt[:8]], max_length=2, sampling_topk=1)  # warm-up
    start = time.perf_counter()
    gen.generate_batch([prompt], max_length=1, min_length=1, sampling_topk=1, include_prompt_in_result=False)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    gen.generate_batch([prompt], max_length=args.new, min_length=args.new, sampling_topk=1,
                       include_prompt_in_result=False)
    total = time.perf_counter() - start
    return {"prefill_tokens_per_s": args.prompt / prefill, "decode_tokens_per_s": (args.new - 1) / max(total - prefill, 1e-9)}


def run_transformers(args):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.path, torch_dtype=torch.float32).eval()
    prompt = torch.tensor([list(np.random.default_rng(3).integers(2, 50000, args.prompt))])
    with torch.inference_mode():
        model.generate(prompt[:, :8], max_new_tokens=2, do_sample=False)  # warm-up
        start = time.perf_counter()
        model(prompt, use_cache=True)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False)
        total = time.perf_counter() - start
    return {"prefill_tokens_per_s": args.prompt / prefill,
            "decode_tokens_per_s": (args.new - 1) / max(total - prefill, 1e-9)}


def run_flashneox(args):
    # An f16 KV cache, as llama.cpp keeps by default.
    out = subprocess.run([BINARY, "bench", "--model", args.path, "--dtype", args.dtype, "--kv-cache-dtype", "f16",
                          "--threads", str(args.threads),
                          "--batch", str(args.batch), "--prompt", str(args.prompt), "--new", str(args.new), "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)["results"][0]
    return {"prefill_tokens_per_s": r["prefill_tokens_per_s"], "decode_tokens_per_s": r["decode_tokens_per_s"]}


def child(args):
    fn = {"llama": run_llama, "ct2": run_ct2, "flashneox": run_flashneox, "transformers": run_transformers}[args.child]
    print(json.dumps(fn(args)))


def spawn(kind, path, args, **extra):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--path", path, "--threads", str(args.threads),
           "--prompt", str(args.prompt), "--new", str(args.new), "--batch", str(args.batch)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=os.path.join(ROOT, "bench/configs/pythia-160m.json"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child")
    ap.add_argument("--path")
    ap.add_argument("--dtype", default="f16")
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--batch", type=int, default=1, help="sequences decoded together (flashneox and llama.cpp)")
    ap.add_argument("--engines", default="all",
                    help="comma-separated subset of: flashneox-f16, llama-f16, flashneox-int8, llama-q8, "
                         "flashneox-q4, llama-q4 (Q4_0), llama-q4km (Q4_K_M), ct2-int8, ct2-f32, transformers")
    args = ap.parse_args()
    if args.child:
        return child(args)
    cfg = json.load(open(args.config))
    with tempfile.TemporaryDirectory() as tmp:
        print(f"writing random weights of {os.path.basename(args.config)} for every engine ...", file=sys.stderr)
        w = random_weights(cfg)
        hf = os.path.join(tmp, "hf")
        os.makedirs(hf)
        json.dump(cfg, open(os.path.join(hf, "config.json"), "w"))
        write_safetensors(os.path.join(hf, "model.safetensors"), w, "F16")
        wanted = None if args.engines == "all" else set(args.engines.split(","))

        def needed(*keys):
            return wanted is None or any(k in wanted for k in keys)
        if needed("llama-f16", "llama-q4km"):
            write_gguf(os.path.join(tmp, "f16.gguf"), cfg, w, "F16")
        if needed("llama-q8"):
            write_gguf(os.path.join(tmp, "q8.gguf"), cfg, w, "Q8_0")
        if needed("llama-q4"):
            write_gguf(os.path.join(tmp, "q4_0.gguf"), cfg, w, "Q4_0")
        if needed("llama-q4km"):
            quantize_q4_k_m(os.path.join(tmp, "f16.gguf"), os.path.join(tmp, "q4_k_m.gguf"))
        if needed("ct2-int8", "ct2-f32"):
            write_ctranslate2(os.path.join(tmp, "ct2"), cfg, w)
        del w
        every = [
            ("flashneox-f16", "flashneox f16", lambda: spawn("flashneox", hf, args, dtype="f16")),
            ("llama-f16", "llama.cpp F16", lambda: spawn("llama", os.path.join(tmp, "f16.gguf"), args)),
            ("flashneox-int8", "flashneox int8", lambda: spawn("flashneox", hf, args, dtype="int8")),
            ("llama-q8", "llama.cpp Q8_0", lambda: spawn("llama", os.path.join(tmp, "q8.gguf"), args)),
            ("flashneox-q4", "flashneox q4", lambda: spawn("flashneox", hf, args, dtype="q4")),
            ("llama-q4", "llama.cpp Q4_0", lambda: spawn("llama", os.path.join(tmp, "q4_0.gguf"), args)),
            ("llama-q4km", "llama.cpp Q4_K_M", lambda: spawn("llama", os.path.join(tmp, "q4_k_m.gguf"), args)),
        ]
        if args.batch == 1:  # the single-sequence peers
            every += [
                ("ct2-int8", "CTranslate2 int8", lambda: spawn("ct2", os.path.join(tmp, "ct2"), args, compute_type="int8")),
                ("ct2-f32", "CTranslate2 f32", lambda: spawn("ct2", os.path.join(tmp, "ct2"), args, compute_type="float32")),
            ]
            try:  # transformers on torch CPU, when installed (bench/requirements-torch.txt)
                import torch  # noqa: F401
                import transformers  # noqa: F401
                every.append(("transformers", "transformers f32", lambda: spawn("transformers", hf, args)))
            except ImportError:
                print("transformers/torch not installed: skipping that peer "
                      "(pip install -r bench/requirements-torch.txt)", file=sys.stderr)
        contenders = [(name, fn) for key, name, fn in every if wanted is None or key in wanted]
        runs = {name: [] for name, _ in contenders}
        for r in range(args.rounds):
            for name, fn in contenders:
                try:
                    runs[name].append(fn())
                except subprocess.CalledProcessError as e:
                    print(f"{name} failed: {e.stderr[-500:]}", file=sys.stderr)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {n: {k: statistics.median(x[k] for x in v) for k in v[0]} for n, v in runs.items() if v}
    if not any(n.startswith("flashneox") for n in med):
        sys.exit("flashneox did not run; see the errors above")
    print(f"\n{os.path.basename(args.config)}, {args.threads} threads, prompt {args.prompt}, {args.new} new tokens, "
          f"batch {args.batch}, median of {args.rounds} alternating rounds")
    print(f"{'engine':<18} {'prefill tok/s':>14} {'decode tok/s':>13} {'flashneox/peer prefill':>23} {'flashneox/peer decode':>22}")
    for name, m in med.items():
        ref = med.get("flashneox int8" if ("int8" in name or "Q8" in name)
                      else "flashneox q4" if ("q4" in name or "Q4" in name) else "flashneox f16")
        if not ref:
            continue
        print(f"{name:<18} {m['prefill_tokens_per_s']:14.0f} {m['decode_tokens_per_s']:13.1f} "
              f"{ref['prefill_tokens_per_s'] / m['prefill_tokens_per_s']:22.2f}x {ref['decode_tokens_per_s'] / m['decode_tokens_per_s']:21.2f}x")


if __name__ == "__main__":
    sys.exit(main())
