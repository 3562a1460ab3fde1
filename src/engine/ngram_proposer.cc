#include "engine/ngram_proposer.h"

#include <algorithm>

namespace flashneox {

int propose_by_ngram(const std::vector<int32_t>& tokens, int max_proposals, std::vector<int32_t>& out,
                     int max_ngram, int min_ngram) {
  const int len = static_cast<int>(tokens.size());
  if (max_proposals <= 0) return 0;
  for (int n = std::min(max_ngram, len - 1); n >= std::max(min_ngram, 1); --n) {
    const int32_t* suffix = tokens.data() + len - n;
    // The most recent earlier occurrence: what the text did last time.
    for (int start = len - n - 1; start >= 0; --start) {
      if (!std::equal(suffix, suffix + n, tokens.data() + start)) continue;
      const int from = start + n;
      const int count = std::min(max_proposals, len - from);
      out.insert(out.end(), tokens.begin() + from, tokens.begin() + from + count);
      return count;
    }
  }
  return 0;
}

}  // namespace flashneox
