#include "model/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "engine/sampler.h"
#include "model/sequence_batch.h"

namespace flashneox {

PerplexityResult score_perplexity(GptNeoxModel& model, const std::vector<int32_t>& tokens,
                                  const PerplexityOptions& o) {
  const ModelConfig& config = model.config();
  const int window = o.window > 0 ? o.window : std::min(config.max_position_embeddings, 1024);
  const int stride = o.stride > 0 ? o.stride : window;
  const bool partial = o.partial_window;
  const int start = o.start_token;
  if (o.window < 0 || window < 2) throw Error("the window must be at least 2 tokens");
  if (o.stride < 0 || stride > window) throw Error("the stride must be between 1 and the window");
  if (window > config.max_position_embeddings)
    throw Error(concat("the window (", window, " tokens) exceeds max_position_embeddings (",
                       config.max_position_embeddings, ")"));
  const int n = static_cast<int>(tokens.size());
  if (start < 0 || start + (partial ? 2 : window) > n)
    throw Error(concat("starting at token ", start, " leaves nothing to score: the text has ", n, " tokens",
                       partial ? "" : concat(" and a full window needs ", window)));
  for (int32_t id : tokens)
    if (id < 0 || id >= config.vocab_size) throw Error(concat("token id ", id, " is outside the vocabulary"));

  const int block_size = 16;
  const int blocks = blocks_for(window, block_size);
  auto cache = model.make_cache(blocks, block_size, o.kv_dtype);
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int b = 0; b < blocks; ++b) table[b] = b;
  const int windows = partial ? (n - start - 2) / stride + 1 : (n - start - window) / stride + 1;
  const int32_t vocab = config.vocab_size;
  double nll = 0.0;
  int64_t scored = 0;
  int scored_until = start + 1;  // targets before this were scored by an earlier window
  for (int w = 0; w < windows; ++w) {
    const int begin = start + w * stride;
    const int end = std::min(begin + window, n);
    if (end - begin < (partial ? 2 : window)) break;
    SequenceStep step{tokens.data() + begin, end - begin, 0, &table, true, o.adapter};
    const ForwardOutput out = model.forward(make_batch({step}, block_size, true), *cache);
    // Each target's log-probability on the thread pool, summed in order (the
    // same total for any thread count).
    const int first = std::max(scored_until, begin + 1);
    std::vector<float> logprobs(static_cast<size_t>(end - first));
    parallel_for_cost(end - first, 8 * vocab, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int target = first + static_cast<int>(t);
        const float* row = out.logits.data() + static_cast<int64_t>(target - 1 - begin) * vocab;
        logprobs[static_cast<size_t>(t)] = Sampler::logprob_of(row, vocab, tokens[target]);
      }
    });
    for (float lp : logprobs) nll -= lp;
    scored += end - first;
    scored_until = end;
    if (o.progress) o.progress(w + 1, windows, nll / static_cast<double>(scored));
    if (end == n) break;
  }
  PerplexityResult result;
  result.nll = nll / static_cast<double>(scored);
  result.perplexity = std::exp(result.nll);
  result.scored_tokens = scored;
  result.window = window;
  result.stride = stride;
  return result;
}

}  // namespace flashneox
