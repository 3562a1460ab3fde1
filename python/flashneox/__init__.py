"""flashneox: GPT-NeoX-architecture models (Pythia, GPT-NeoX-20B, ...) from Python.

    >>> import flashneox
    >>> model = flashneox.Model("EleutherAI/pythia-160m@step3000")   # or a folder
    >>> model.generate("The capital of France is", max_new_tokens=8).text
    >>> logits, states = model.logits(model.tokenizer.encode("Hello"), hidden_states="all")

Models load from a folder (config.json, *.safetensors or pytorch_model*.bin,
tokenizer.json) or by hub id `org/name[@revision]` from the local Hugging Face
cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub); nothing is ever
downloaded. The engine runs with the GIL released, and one model may be shared
by many threads: their generate() calls are batched together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Literal, Optional, Sequence, Union, overload

import numpy as np

from . import _core

__all__ = ["Model", "Tokenizer", "Generation", "Token", "Perplexity", "Error"]
__version__ = "0.1.0"

Error = _core.Error
"""Raised for bad input, damaged model files and failed requests, with the engine's message."""

HiddenStates = Union[Literal[False], Literal["final"], Literal["all"]]


@dataclass(frozen=True)
class Generation:
    """One prompt's continuation."""

    text: str
    """The generated text (without the prompt)."""
    token_ids: list[int]
    finish_reason: str
    """"length", "eos_token" or "stop_sequence"."""
    prompt_tokens: int
    seed: Optional[int]
    """The seed a sampled generation used (None when greedy)."""


@dataclass(frozen=True)
class Token:
    """One generated token, as stream() yields it."""

    id: int
    text: str
    """The text this token completes (empty while a character is still incomplete)."""
    logprob: Optional[float]
    special: bool


@dataclass(frozen=True)
class Perplexity:
    """The result of Model.perplexity()."""

    nll: float
    """Mean negative log-likelihood per scored token, in nats."""
    perplexity: float
    scored_tokens: int
    window: int
    stride: int


class Tokenizer:
    """The model's byte-level BPE tokenizer (tokenizer.json), identical to Hugging Face `tokenizers`."""

    def __init__(self, core: "_core.Tokenizer"):
        self._core = core

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "Tokenizer":
        """Loads a tokenizer.json."""
        return cls(_core.Tokenizer.from_file(os.fspath(path)))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added)."""
        return self._core.encode(text)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """The text of `ids`."""
        return self._core.decode(_ids(ids), skip_special_tokens)

    def token_id(self, token: str) -> Optional[int]:
        """The id of one vocabulary entry (e.g. "<|endoftext|>"), or None."""
        return self._core.token_id(token)

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    def __len__(self) -> int:
        return self._core.vocab_size


def _ids(ids: Sequence[int]) -> list[int]:
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError("token ids must be a 1-D integer array")
        return ids.tolist()
    return [int(i) for i in ids]


def _is_flat(ids) -> bool:
    if isinstance(ids, np.ndarray):
        return ids.ndim == 1
    return len(ids) > 0 and all(isinstance(i, (int, np.integer)) for i in ids)


class Model:
    """A GPT-NeoX model loaded once, with its tokenizer and a continuous-batching engine.

    Args:
        model: a model folder, or a hub id "org/name" or "org/name@revision" (branch, tag or
            commit) found in the local Hugging Face cache.
        dtype: the weights' compute dtype: "f32", "f16", "bf16" or "int8"; None keeps the stored one.
        threads: compute threads for the whole process (one pool); 0 uses every core, or
            OMP_NUM_THREADS when it is set.
        kv_cache_dtype: "f32" or "f16" for the KV cache of generate(), logits() and perplexity().
        kv_cache_memory: generate()'s KV cache budget ("1GiB", "512MiB" or a fraction of
            available memory such as "0.2"); None: min(20% of free memory, 2 GiB).
        check_weights: scan every weight for NaN/Inf while loading.
    """

    def __init__(self, model: Union[str, os.PathLike], *, dtype: Optional[str] = None, threads: int = 0,
                 kv_cache_dtype: str = "f32", kv_cache_memory: Optional[str] = None, check_weights: bool = False):
        self._core = _core.Model(os.fspath(model), dtype, threads, kv_cache_dtype, kv_cache_memory, check_weights)
        core_tokenizer = self._core.tokenizer
        self.tokenizer: Optional[Tokenizer] = Tokenizer(core_tokenizer) if core_tokenizer is not None else None
        """The model's tokenizer (None for a folder without tokenizer.json: then only token ids work)."""

    @property
    def config(self) -> dict:
        """The model's shape: vocab_size, hidden_size, num_layers, num_heads, max_position_embeddings, eos_token_id."""
        return self._core.config

    @property
    def stats(self) -> dict:
        """generate()'s engine: requests waiting and running, KV cache blocks in all and in use."""
        return self._core.stats

    @property
    def directory(self) -> str:
        """The folder the model was loaded from (the snapshot folder for a hub id)."""
        return self._core.directory

    @property
    def dtype(self) -> str:
        """The weights' compute dtype."""
        return self._core.dtype

    @staticmethod
    def _params(max_new_tokens: int, temperature: Optional[float], top_k: Optional[int], top_p: Optional[float],
                typical_p: Optional[float], repetition_penalty: Optional[float], frequency_penalty: float,
                presence_penalty: float, do_sample: bool, seed: Optional[int], stop: Union[str, Sequence[str]],
                ignore_eos: bool) -> "_core.SamplingParams":
        p = _core.SamplingParams()
        p.max_new_tokens = max_new_tokens
        p.temperature = temperature
        p.top_k = top_k
        p.top_p = top_p
        p.typical_p = typical_p
        p.repetition_penalty = repetition_penalty
        p.frequency_penalty = frequency_penalty
        p.presence_penalty = presence_penalty
        p.do_sample = do_sample
        if seed is not None and seed < 0:
            raise Error("seed must be non-negative")
        p.seed = seed
        p.stop = [stop] if isinstance(stop, str) else list(stop)
        p.ignore_eos_token = ignore_eos
        p.validate()
        return p

    @overload
    def generate(self, prompts: str, *, max_new_tokens: int = ..., temperature: Optional[float] = ...,
                 top_k: Optional[int] = ..., top_p: Optional[float] = ..., typical_p: Optional[float] = ...,
                 repetition_penalty: Optional[float] = ..., frequency_penalty: float = ...,
                 presence_penalty: float = ..., do_sample: bool = ..., seed: Optional[int] = ...,
                 stop: Union[str, Sequence[str]] = ..., ignore_eos: bool = ...,
                 adapter: Optional[str] = ...) -> Generation: ...

    @overload
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = ..., temperature: Optional[float] = ...,
                 top_k: Optional[int] = ..., top_p: Optional[float] = ..., typical_p: Optional[float] = ...,
                 repetition_penalty: Optional[float] = ..., frequency_penalty: float = ...,
                 presence_penalty: float = ..., do_sample: bool = ..., seed: Optional[int] = ...,
                 stop: Union[str, Sequence[str]] = ..., ignore_eos: bool = ...,
                 adapter: Optional[str] = ...) -> list[Generation]: ...

    def generate(self, prompts, *, max_new_tokens=20, temperature=None, top_k=None, top_p=None, typical_p=None,
                 repetition_penalty=None, frequency_penalty=0.0, presence_penalty=0.0, do_sample=False, seed=None,
                 stop=(), ignore_eos=False, adapter=None):
        """Continues one prompt (returns a Generation) or many, batched together (returns a list).

        Greedy unless a sampling option is given (temperature other than 0 and 1, top_k, top_p,
        typical_p, or do_sample); the options mean what TGI's /generate parameters mean.
        `stop` ends a generation at the first of these strings; `ignore_eos` runs past the
        end-of-sequence token; `adapter` is a PEFT LoRA adapter folder or hub id, applied to
        these prompts only. With a seed, every prompt samples from that same seed.
        """
        single = isinstance(prompts, str)
        batch = [prompts] if single else list(prompts)
        if not all(isinstance(p, str) for p in batch):
            raise TypeError("prompts must be a string or a sequence of strings")
        params = self._params(max_new_tokens, temperature, top_k, top_p, typical_p, repetition_penalty,
                              frequency_penalty, presence_penalty, do_sample, seed, stop, ignore_eos)
        results = [Generation(*r) for r in self._core.generate(batch, params, adapter)]
        return results[0] if single else results

    def stream(self, prompt: str, *, max_new_tokens: int = 20, temperature: Optional[float] = None,
               top_k: Optional[int] = None, top_p: Optional[float] = None, typical_p: Optional[float] = None,
               repetition_penalty: Optional[float] = None, frequency_penalty: float = 0.0,
               presence_penalty: float = 0.0, do_sample: bool = False, seed: Optional[int] = None,
               stop: Union[str, Sequence[str]] = (), ignore_eos: bool = False,
               adapter: Optional[str] = None) -> Iterator[Token]:
        """Yields the tokens of one prompt's continuation as they are generated.

        Takes generate()'s options. Leaving the loop early (break, an exception, or dropping the
        iterator) cancels the request and frees its cache blocks.
        """
        params = self._params(max_new_tokens, temperature, top_k, top_p, typical_p, repetition_penalty,
                              frequency_penalty, presence_penalty, do_sample, seed, stop, ignore_eos)
        stream = self._core.stream(prompt, params, adapter)
        try:
            while (token := stream.next()) is not None:
                yield Token(*token)
        finally:
            stream.close()

    def logits(self, token_ids, *, hidden_states: HiddenStates = False, adapter: Optional[str] = None):
        """Logits at every position of one sequence of token ids, or of each of many.

        One sequence (a list or 1-D array of ints) gives a float32 array [len, vocab]; a list of
        sequences gives a list of them, all run as one batch. With hidden_states="final" each
        result is a tuple (logits, hidden [len, hidden_size]) holding the final layer norm's
        output; with "all", (logits, hidden [num_layers + 1, len, hidden_size]): the residual
        stream entering each layer and then the final layer norm's output, as transformers'
        output_hidden_states=True returns them.
        """
        if hidden_states not in (False, None, "final", "all"):
            raise ValueError('hidden_states must be False, "final" or "all"')
        mode = {False: 0, None: 0, "final": 1, "all": 2}[hidden_states]
        single = _is_flat(token_ids)
        sequences = [_ids(token_ids)] if single else [_ids(s) for s in token_ids]
        results = self._core.logits(sequences, mode, adapter)
        out = [r[0] if mode == 0 else (r[0], r[1]) for r in results]
        return out[0] if single else out

    def perplexity(self, text: Union[str, Sequence[int]], *, window: Optional[int] = None,
                   stride: Optional[int] = None, start_token: int = 0, partial_window: bool = False,
                   adapter: Optional[str] = None) -> Perplexity:
        """Perplexity of a text (or of token ids) in windows of `window` tokens every `stride`.

        Each token is scored once, by the first window that holds it, with that window's
        context; only full windows count unless `partial_window`. `window` defaults to
        min(max_position_embeddings, 1024) and `stride` to the window (no overlap).
        """
        if isinstance(text, str):
            if self.tokenizer is None:
                raise Error(f"{self.directory}: scoring text needs a tokenizer.json beside the model; pass token ids")
            tokens = self.tokenizer.encode(text)
        else:
            tokens = _ids(text)
        if window is not None and window < 2:
            raise Error("window must be at least 2")
        if stride is not None and stride < 1:
            raise Error("stride must be at least 1")
        return Perplexity(*self._core.perplexity(tokens, window or 0, stride or 0, start_token, partial_window,
                                                 adapter))
