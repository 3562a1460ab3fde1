// Prompt-lookup speculation: guesses the next tokens of a sequence by
// finding its last few tokens earlier in it (the prompt or its own output)
// and proposing what followed them there. No second model; it pays where the
// output quotes its input (summaries, code edits, extraction, repetition).
#pragma once

#include <cstdint>
#include <vector>

namespace flashneox {

// Appends up to `max_proposals` tokens to `out`: the tokens that followed the
// most recent earlier occurrence of the longest suffix of `tokens` (of
// `max_ngram` tokens down to `min_ngram`) that occurs earlier. Returns how
// many it appended (0: no match).
int propose_by_ngram(const std::vector<int32_t>& tokens, int max_proposals, std::vector<int32_t>& out,
                     int max_ngram = 3, int min_ngram = 1);

}  // namespace flashneox
