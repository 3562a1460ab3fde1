#include "model/sequence_runner.h"

#include <algorithm>
#include <numeric>
#include <limits>
#include <random>

#include "core/error.h"
#include "model/sequence_batch.h"

namespace flashneox {

namespace {

// Block tables for sequences of the given final lengths, plus the cache to hold them.
std::vector<std::vector<int32_t>> plan_blocks(const std::vector<int>& lengths,
                                              const RunOptions& options, int& total_blocks) {
  const int bs = options.block_size;
  int needed = 0;
  int most = 0;
  for (int len : lengths) {
    needed += blocks_for(len, bs);
    most = std::max(most, blocks_for(len, bs));
  }
  total_blocks = needed + (options.scatter_blocks ? needed / 2 + 3 : 0);
  std::vector<int32_t> pool(static_cast<size_t>(total_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  if (options.scatter_blocks) std::shuffle(pool.begin(), pool.end(), std::mt19937(1234));
  std::vector<std::vector<int32_t>> tables(lengths.size());
  size_t next = 0;
  for (int round = 0; round < most; ++round)  // interleave: seq 0's block r, seq 1's block r, ...
    for (size_t s = 0; s < lengths.size(); ++s)
      if (round < blocks_for(lengths[s], bs)) tables[s].push_back(pool[next++]);
  return tables;
}

}  // namespace

int32_t argmax(const float* values, int64_t count) {
  return static_cast<int32_t>(std::max_element(values, values + count) - values);
}

std::vector<SequenceResult> run_sequences(GptNeoxModel& model,
                                          const std::vector<std::vector<int32_t>>& sequences,
                                          const RunOptions& options) {
  const int vocab = model.config().vocab_size;
  const int hidden = model.config().hidden_size;
  std::vector<int> lengths;
  for (const auto& seq : sequences) {
    if (seq.empty()) throw Error("every sequence needs at least one token");
    lengths.push_back(static_cast<int>(seq.size()));
  }
  int total_blocks = 0;
  const auto tables = plan_blocks(lengths, options, total_blocks);
  auto cache = model.make_cache(total_blocks, options.block_size, options.kv_dtype);
  ForwardWorkspace workspace;  // one for every step, grown to the largest
  auto adapter_of = [&](size_t s) { return options.adapters.empty() ? nullptr : options.adapters.at(s); };

  std::vector<SequenceResult> results(sequences.size());
  std::vector<int> done(sequences.size(), 0);
  auto store = [&](const ForwardOutput& out, const std::vector<size_t>& owners,
                   const std::vector<int>& counts) {
    int64_t row = 0;
    for (size_t i = 0; i < owners.size(); ++i) {
      SequenceResult& r = results[owners[i]];
      for (int j = 0; j < counts[i]; ++j, ++row) {
        r.logits.insert(r.logits.end(), out.logits.begin() + row * vocab,
                        out.logits.begin() + (row + 1) * vocab);
        r.hidden.insert(r.hidden.end(), out.hidden.begin() + row * hidden,
                        out.hidden.begin() + (row + 1) * hidden);
        if (!options.keep_layer_hidden) continue;
        r.layer_hidden.resize(static_cast<size_t>(model.config().num_layers));
        for (size_t l = 0; l < r.layer_hidden.size(); ++l) {
          const auto from = out.layer_hidden.begin() + (static_cast<int64_t>(l) * out.rows + row) * hidden;
          r.layer_hidden[l].insert(r.layer_hidden[l].end(), from, from + hidden);
        }
      }
    }
  };
  // One forward that takes each sequence up to `target(s)` tokens.
  auto advance = [&](auto target) {
    std::vector<SequenceStep> steps;
    std::vector<size_t> owners;
    std::vector<int> counts;
    bool prefill = false;
    for (size_t s = 0; s < sequences.size(); ++s) {
      const int upto = std::min<int>(target(s), lengths[s]);
      if (upto <= done[s]) continue;
      steps.push_back({sequences[s].data() + done[s], upto - done[s], done[s], &tables[s], true, adapter_of(s)});
      owners.push_back(s);
      counts.push_back(upto - done[s]);
      prefill = prefill || upto - done[s] > 1 || done[s] == 0;
    }
    if (steps.empty()) return false;
    ForwardBatch batch = make_batch(steps, options.block_size, prefill);
    batch.keep_layer_hidden = options.keep_layer_hidden;
    ForwardOutput out = model.forward(batch, *cache, &workspace);
    store(out, owners, counts);
    for (size_t i = 0; i < owners.size(); ++i) done[owners[i]] += counts[i];
    return true;
  };
  const int prefill = options.prefill < 0 ? std::numeric_limits<int>::max() : options.prefill;
  if (options.cached_prefix > 0) advance([&](size_t) { return std::min(options.cached_prefix, prefill); });
  advance([&](size_t s) {
    return options.prefill_half ? (lengths[s] + 1) / 2 : std::max(prefill, 1);
  });
  while (advance([&](size_t s) { return done[s] + 1; })) {
  }
  return results;
}

std::vector<std::vector<int32_t>> greedy_continue(GptNeoxModel& model,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  int steps, const RunOptions& options) {
  const int vocab = model.config().vocab_size;
  std::vector<int> lengths;
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("every prompt needs at least one token");
    lengths.push_back(static_cast<int>(p.size()) + steps);
  }
  int total_blocks = 0;
  const auto tables = plan_blocks(lengths, options, total_blocks);
  auto cache = model.make_cache(total_blocks, options.block_size, options.kv_dtype);
  ForwardWorkspace workspace;  // one for every step, grown to the largest
  auto adapter_of = [&](size_t s) { return options.adapters.empty() ? nullptr : options.adapters.at(s); };
  std::vector<std::vector<int32_t>> generated(prompts.size());
  std::vector<std::vector<int32_t>> tokens = prompts;  // prompt + generated so far

  // Prefill (optionally in two parts: a cached prefix first), then decode.
  const int prefix = options.cached_prefix;
  std::vector<int> cached(prompts.size(), 0);
  if (prefix > 0) {
    std::vector<SequenceStep> first;
    for (size_t s = 0; s < prompts.size(); ++s) {
      const int n = std::min<int>(prefix, static_cast<int>(prompts[s].size()) - 1);
      if (n <= 0) continue;
      first.push_back({prompts[s].data(), n, 0, &tables[s], false, adapter_of(s)});
      cached[s] = n;
    }
    if (!first.empty()) model.forward(make_batch(first, options.block_size, true), *cache, &workspace);
  }
  std::vector<SequenceStep> fill;
  for (size_t s = 0; s < prompts.size(); ++s)
    fill.push_back({prompts[s].data() + cached[s], static_cast<int>(prompts[s].size()) - cached[s],
                    cached[s], &tables[s], false, adapter_of(s)});
  ForwardOutput out = model.forward(make_batch(fill, options.block_size, true), *cache, &workspace);
  for (int step = 0; step < steps; ++step) {
    for (size_t s = 0; s < prompts.size(); ++s) {
      const int32_t next = argmax(out.logits.data() + s * vocab, vocab);
      generated[s].push_back(next);
      tokens[s].push_back(next);
    }
    if (step + 1 == steps) break;
    std::vector<SequenceStep> decode;
    for (size_t s = 0; s < prompts.size(); ++s)
      decode.push_back({&tokens[s].back(), 1, static_cast<int>(tokens[s].size()) - 1, &tables[s],
                        false, adapter_of(s)});
    out = model.forward(make_batch(decode, options.block_size, false), *cache, &workspace);
  }
  return generated;
}

std::vector<float> all_hidden_states(const SequenceResult& result) {
  std::vector<float> all;
  all.reserve((result.layer_hidden.size() + 1) * result.hidden.size());
  for (const auto& layer : result.layer_hidden) all.insert(all.end(), layer.begin(), layer.end());
  all.insert(all.end(), result.hidden.begin(), result.hidden.end());
  return all;
}

}  // namespace flashneox
