// One forward call's input: a flat, ragged batch of tokens from many
// sequences (DESIGN §2, after LoRAX's FlashGPTNeoXForCausalLM).
#pragma once

#include <cstdint>
#include <vector>

#include "lora/lora_adapter.h"

namespace flashneox {

struct ForwardBatch {
  std::vector<int32_t> input_ids;     // [num_tokens], all sequences concatenated
  std::vector<int32_t> position_ids;  // [num_tokens]
  // [num_seqs + 1] prefix sums of new tokens per sequence; empty in a decode
  // step, where every sequence brings exactly one token.
  std::vector<int32_t> cu_seqlen_prefill;
  std::vector<int32_t> cached_lens;   // [num_seqs] tokens already in the cache (seqlen)
  std::vector<std::vector<int32_t>> block_tables;  // per sequence, its blocks in order
  std::vector<int64_t> slots;         // [num_tokens] where each new token's K/V go
  std::vector<int32_t> lm_head_indices;  // token rows to keep; empty keeps all
  bool skip_lm_head = false;          // return final hidden states only
  bool keep_layer_hidden = false;     // also return the residual stream entering each layer
  // [num_seqs] the LoRA adapter each sequence runs with (nullptr: the base
  // model alone); empty when no sequence has one. Loaded for this model.
  std::vector<const LoraAdapter*> adapters;

  int num_seqs() const { return static_cast<int>(cached_lens.size()); }
  int num_tokens() const { return static_cast<int>(input_ids.size()); }
  bool is_prefill() const { return !cu_seqlen_prefill.empty(); }
};

struct ForwardOutput {
  int64_t rows = 0;
  std::vector<float> hidden;  // [rows, hidden_size] final layer-norm output
  std::vector<float> logits;  // [rows, vocab_size]; empty with skip_lm_head
  // With keep_layer_hidden, [num_layers, rows, hidden_size]: the residual
  // stream entering layer l (the embeddings for l = 0). With `hidden` after
  // them these are transformers' output_hidden_states.
  std::vector<float> layer_hidden;
};

}  // namespace flashneox
