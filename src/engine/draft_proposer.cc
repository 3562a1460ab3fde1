#include "engine/draft_proposer.h"

#include <algorithm>

#include "core/error.h"
#include "model/sequence_batch.h"

namespace flashneox {

namespace {
int32_t argmax(const float* row, int32_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}
}  // namespace

DraftProposer::DraftProposer(std::shared_ptr<GptNeoxModel> draft, int32_t vocab_size, int num_blocks, int block_size)
    : draft_(std::move(draft)), blocks_(num_blocks, block_size) {
  if (draft_->config().vocab_size != vocab_size)
    throw Error(concat("the draft model's vocabulary has ", draft_->config().vocab_size,
                       " entries, the model's ", vocab_size, ": a draft must share the model's tokenizer"));
  cache_ = draft_->make_cache(num_blocks, block_size);
}

void DraftProposer::propose(const std::vector<Request>& requests) {
  // Round 0 brings every token the draft has not seen; round k its guess k.
  struct Live {
    const Request* request;
    State* state;
    std::vector<int32_t> input;
    int guessed = 0;
  };
  std::vector<Live> live;
  for (const Request& r : requests) {
    State& s = states_[r.id];
    const int total = static_cast<int>(r.tokens->size());
    s.computed = std::min({s.computed, r.valid, total - 1});  // at least the last token, for its logits
    // Room for the unseen tokens and all but the last guess.
    if (!blocks_.reserve(s.blocks, total + r.want - 1)) continue;
    live.push_back({&r, &s, std::vector<int32_t>(r.tokens->begin() + s.computed, r.tokens->end()), 0});
  }
  const int32_t vocab = draft_->config().vocab_size;
  const int block_size = blocks_.block_size();
  for (bool first = true; !live.empty(); first = false) {
    std::vector<SequenceStep> steps;
    for (const Live& l : live)
      steps.push_back({l.input.data(), static_cast<int>(l.input.size()), l.state->computed, &l.state->blocks, false,
                       nullptr});
    const ForwardOutput out = draft_->forward(make_batch(steps, block_size, first), *cache_, &workspace_);
    std::vector<Live> next;
    for (size_t i = 0; i < live.size(); ++i) {
      Live& l = live[i];
      l.state->computed += static_cast<int>(l.input.size());
      const int32_t guess = argmax(out.logits.data() + static_cast<int64_t>(i) * vocab, vocab);
      l.request->out->push_back(guess);
      if (++l.guessed < l.request->want) {
        l.input.assign(1, guess);
        next.push_back(std::move(l));
      }
    }
    live = std::move(next);
  }
}

void DraftProposer::forget(uint64_t id) {
  auto it = states_.find(id);
  if (it == states_.end()) return;
  blocks_.release(it->second.blocks);
  states_.erase(it);
}

}  // namespace flashneox
