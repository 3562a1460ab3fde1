// Perplexity of a token sequence under the model, scored in windows of
// `window` tokens every `stride` tokens: each target is scored once, by the
// first window that holds it, with as much context as that window gives.
// Only full windows count, as in the reference evaluation, unless
// `partial_window` also scores the tail. Used by `flashneox perplexity` and
// the Python API.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/dtype.h"
#include "lora/lora_adapter.h"
#include "model/gpt_neox.h"

namespace flashneox {

struct PerplexityOptions {
  int window = 0;  // 0: min(max_position_embeddings, 1024)
  int stride = 0;  // 0: the window
  int start_token = 0;
  bool partial_window = false;
  DType kv_dtype = DType::F32;
  const LoraAdapter* adapter = nullptr;
  // Called after each window with (windows done, windows in all, mean nll so far).
  std::function<void(int, int, double)> progress;
};

struct PerplexityResult {
  double nll = 0.0;         // mean negative log-likelihood per scored token (nats)
  double perplexity = 0.0;  // exp(nll)
  int64_t scored_tokens = 0;
  int window = 0, stride = 0;
};

// Throws Error for a window, stride or start that leaves nothing to score.
PerplexityResult score_perplexity(GptNeoxModel& model, const std::vector<int32_t>& tokens,
                                  const PerplexityOptions& options);

}  // namespace flashneox
