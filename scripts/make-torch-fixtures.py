#!/usr/bin/env python3
"""Writes the torch.save fixtures of tests/data/torch from the neox-parallel
fixture model (needs torch and safetensors; only this script does):

  bin-f32/          pytorch_model.bin, an OrderedDict state dict with _metadata,
                    plus the buffers old Pythia files carry (a BOOL causal mask,
                    masked_bias, inv_freq)
  bin-f16/, bin-bf16/   plain dicts in those dtypes; st-f16/, st-bf16/ are
                    their safetensors twins
  bin-sharded/      two shards and pytorch_model.bin.index.json
  malicious/        a pytorch_model.bin whose pickle calls os.system
  legacy/           a pre-zip (legacy format) pytorch_model.bin
  noncontiguous/, set-opcode/   a transposed tensor; a pickle holding a set

Run: python scripts/make-torch-fixtures.py  (from the repository root)
"""
import collections
import io
import json
import os
import pickle
import shutil
import zipfile

import torch
from safetensors.torch import load_file, save_file

SRC = "tests/data/fixtures/neox-parallel"
OUT = "tests/data/torch"


def folder(name):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    shutil.copy(os.path.join(SRC, "config.json"), path)
    return path


def main():
    weights = load_file(os.path.join(SRC, "model.safetensors"))
    layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("gpt_neox.layers.")})

    state = collections.OrderedDict((k, v.clone()) for k, v in weights.items())
    for layer in layers:
        prefix = f"gpt_neox.layers.{layer}.attention."
        state[prefix + "bias"] = torch.tril(torch.ones(8, 8, dtype=torch.bool)).view(1, 1, 8, 8)
        state[prefix + "masked_bias"] = torch.tensor(-1e9)
        state[prefix + "rotary_emb.inv_freq"] = torch.arange(4, dtype=torch.float32)
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    torch.save(state, os.path.join(folder("bin-f32"), "pytorch_model.bin"))

    for name, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        converted = {k: v.to(dtype) for k, v in weights.items()}
        torch.save(converted, os.path.join(folder(f"bin-{name}"), "pytorch_model.bin"))
        save_file(converted, os.path.join(folder(f"st-{name}"), "model.safetensors"))

    sharded = folder("bin-sharded")
    names = sorted(weights)
    half = len(names) // 2
    index = {"metadata": {}, "weight_map": {}}
    for i, part in enumerate((names[:half], names[half:])):
        shard = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: weights[k] for k in part}, os.path.join(sharded, shard))
        index["weight_map"].update({k: shard for k in part})
    with open(os.path.join(sharded, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=1)

    # A zip laid out as torch.save lays it out, whose data.pkl would run
    # os.system("touch PWNED") when unpickled.
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch PWNED",))

    with zipfile.ZipFile(os.path.join(folder("malicious"), "pytorch_model.bin"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")

    # A transposed (non-contiguous) tensor, and a pickle with an opcode no
    # state dict needs (a set).
    torch.save({"x": torch.arange(6.0).reshape(2, 3).t()}, os.path.join(folder("noncontiguous"), "pytorch_model.bin"))
    with zipfile.ZipFile(os.path.join(folder("set-opcode"), "pytorch_model.bin"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": {1, 2}}, protocol=4))

    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buffer, _use_new_zipfile_serialization=False)
    with open(os.path.join(folder("legacy"), "pytorch_model.bin"), "wb") as f:
        f.write(buffer.getvalue())


if __name__ == "__main__":
    main()
