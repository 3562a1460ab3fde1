#include "engine/sampling_params.h"

#include <cmath>

#include "core/error.h"

namespace flashneox {

bool SamplingParams::sampling() const {
  if (temperature && *temperature == 0.0) return false;  // temperature 0: greedy
  if (do_sample) return true;
  return (temperature && *temperature != 1.0) || (top_k && *top_k > 0) ||
         (top_p && *top_p < 1.0) || (typical_p && *typical_p < 1.0);
}

void SamplingParams::validate() const {
  auto bad = [](const char* name, const std::string& rule) {
    return Error(concat("`", name, "` must be ", rule));
  };
  auto finite = [](double v) { return std::isfinite(v); };
  if (temperature && !(finite(*temperature) && *temperature >= 0.0))
    throw bad("temperature", "a number >= 0 (0 means greedy)");
  if (top_k && *top_k <= 0) throw bad("top_k", "strictly positive");
  if (top_p && !(finite(*top_p) && *top_p > 0.0 && *top_p <= 1.0))
    throw bad("top_p", "> 0.0 and <= 1.0");
  if (typical_p && !(finite(*typical_p) && *typical_p > 0.0 && *typical_p <= 1.0))
    throw bad("typical_p", "> 0.0 and <= 1.0");
  if (repetition_penalty && !(finite(*repetition_penalty) && *repetition_penalty > 0.0))
    throw bad("repetition_penalty", "strictly positive");
  if (!(finite(frequency_penalty) && frequency_penalty >= -2.0 && frequency_penalty <= 2.0))
    throw bad("frequency_penalty", ">= -2.0 and <= 2.0");
  if (!(finite(presence_penalty) && presence_penalty >= -2.0 && presence_penalty <= 2.0))
    throw bad("presence_penalty", ">= -2.0 and <= 2.0");
  if (max_new_tokens < 1) throw bad("max_new_tokens", "strictly positive");
  if (top_n_tokens < 0 || top_n_tokens > 10) throw bad("top_n_tokens", ">= 0 and <= 10");
  if (speculate && (*speculate < 0 || *speculate > kMaxSpeculate)) throw bad("speculate", ">= 0 and <= 16");
  if (stop.size() > 16) throw bad("stop", "at most 16 sequences");
  for (const std::string& s : stop)
    if (s.empty()) throw bad("stop", "non-empty strings");
}

}  // namespace flashneox
