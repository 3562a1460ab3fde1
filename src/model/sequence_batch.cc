#include "model/sequence_batch.h"

#include "core/error.h"

namespace flashneox {

ForwardBatch make_batch(const std::vector<SequenceStep>& steps, int block_size, bool prefill) {
  ForwardBatch b;
  if (prefill) b.cu_seqlen_prefill.push_back(0);
  for (const SequenceStep& step : steps) {
    if (!prefill && step.count != 1) throw Error("make_batch: a decode step takes one token");
    const std::vector<int32_t>& blocks = *step.blocks;
    if (static_cast<int64_t>(blocks.size()) * block_size < step.cached + step.count)
      throw Error("make_batch: block table too short for the sequence");
    for (int j = 0; j < step.count; ++j) {
      const int pos = step.cached + j;
      b.input_ids.push_back(step.tokens[j]);
      b.position_ids.push_back(pos);
      b.slots.push_back(static_cast<int64_t>(blocks[pos / block_size]) * block_size +
                        pos % block_size);
      if (step.keep_all_rows || j == step.count - 1)
        b.lm_head_indices.push_back(static_cast<int32_t>(b.input_ids.size() - 1));
    }
    b.cached_lens.push_back(step.cached);
    b.block_tables.push_back(blocks);
    if (prefill) b.cu_seqlen_prefill.push_back(static_cast<int32_t>(b.input_ids.size()));
  }
  for (const SequenceStep& step : steps)
    if (step.adapter) {
      for (const SequenceStep& s : steps) b.adapters.push_back(s.adapter);
      break;
    }
  return b;
}

}  // namespace flashneox
