// Speculation with a draft model: a smaller GPT-NeoX with the target's
// vocabulary guesses each sequence's next tokens greedily, from its own paged
// KV cache, for all sequences of a step in a few batched forwards.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "cache/block_manager.h"
#include "model/forward_workspace.h"
#include "model/gpt_neox.h"

namespace flashneox {

class DraftProposer {
 public:
  // A cache of `num_blocks` blocks of `block_size` tokens (the target's token
  // capacity). Throws when the draft's vocabulary size is not `vocab_size`.
  DraftProposer(std::shared_ptr<GptNeoxModel> draft, int32_t vocab_size, int num_blocks, int block_size);

  struct Request {
    uint64_t id = 0;                               // the sequence, as keep() and forget() name it
    const std::vector<int32_t>* tokens = nullptr;  // prompt and output so far
    int valid = 0;                                 // of them, the ones the model has computed (final)
    int want = 0;                                  // guesses wanted (>= 1)
    std::vector<int32_t>* out = nullptr;           // the guesses are appended here
  };
  // Catches each sequence's draft cache up with its tokens (draft K/V past
  // `valid` are guesses the model may have refused, so they are recomputed),
  // then guesses `want` tokens; none when the draft's cache is full.
  void propose(const std::vector<Request>& requests);
  // The sequence ended or was preempted: its draft blocks are freed.
  void forget(uint64_t id);

  const GptNeoxModel& model() const { return *draft_; }
  size_t cache_bytes() const { return cache_->bytes(); }
  int free_blocks() const { return blocks_.free_blocks(); }

 private:
  struct State {
    std::vector<int32_t> blocks;
    int computed = 0;  // leading tokens whose K/V are in the draft cache
  };
  std::shared_ptr<GptNeoxModel> draft_;
  std::unique_ptr<KvCache> cache_;
  BlockManager blocks_;
  ForwardWorkspace workspace_;
  std::unordered_map<uint64_t, State> states_;
};

}  // namespace flashneox
