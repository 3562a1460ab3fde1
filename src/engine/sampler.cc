#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "core/isa.h"
#include "kernels/cpu/lanes16.h"  // exp_lane

namespace flashneox {

namespace {

using Candidate = std::pair<float, int32_t>;  // (logit, id)

bool by_logit_desc(const Candidate& a, const Candidate& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}

// Sorts (descending) at least the first n candidates, growing geometrically:
// top-p and typical-p rarely need more than a few hundred of 50k tokens.
class SortedCandidates {
 public:
  explicit SortedCandidates(std::vector<Candidate>& c) : c_(c) {}
  void ensure(size_t n) {
    n = std::min(n, c_.size());
    if (n <= sorted_) return;
    size_t want = std::max<size_t>(n, std::max<size_t>(64, sorted_ * 4));
    want = std::min(want, c_.size());
    std::partial_sort(c_.begin() + static_cast<std::ptrdiff_t>(sorted_),
                      c_.begin() + static_cast<std::ptrdiff_t>(want), c_.end(), by_logit_desc);
    sorted_ = want;
  }

 private:
  std::vector<Candidate>& c_;
  size_t sorted_ = 0;
};

// sum(exp(x[i] - max)) over a row of logits, vectorised: the greedy path's
// log-softmax over 50k logits per token per sequence and a perplexity run's
// over every token of a text. Sixteen partial sums in double, lane l taking
// every 16th logit and added up in one order at the end: the same bits on
// every instruction set, and no float accumulation error (one float running
// total over 50k terms was off by 6e-5). Each exp is attention's (Cephes'
// expf, exact-rounding operations only, so it too is the same everywhere).
FLASHNEOX_LOOP_BODY double sum_exp_body(const float* x, int32_t n, float max) {
  double lanes[16] = {};
  int32_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += static_cast<double>(cpu::exp_lane(x[i + l] - max));
  for (int l = 0; i < n; ++i, ++l) lanes[l] += static_cast<double>(cpu::exp_lane(x[i] - max));
  double total = 0.0;
  for (double lane : lanes) total += lane;
  return total;
}
FLASHNEOX_PER_ISA(double, sum_exp, (const float* x, int32_t n, float max), (x, n, max))

FLASHNEOX_LOOP_BODY float max_logit_body(const float* x, int32_t n) {
  float max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : max)  // max is exact in any order
  for (int32_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  return max;
}
FLASHNEOX_PER_ISA(float, max_logit, (const float* x, int32_t n), (x, n))

void apply_penalties(float* logits, const SamplingParams& p, const TokenCounts& history) {
  const double rp = p.repetition_penalty.value_or(1.0);
  for (const auto& [id, count] : history.counts) {
    float& l = logits[id];
    if (rp != 1.0) l = l < 0 ? static_cast<float>(l * rp) : static_cast<float>(l / rp);
    l -= static_cast<float>(p.frequency_penalty * count + (count > 0 ? p.presence_penalty : 0.0));
  }
}

double log_sum_exp(const std::vector<Candidate>& c) {
  float max = -std::numeric_limits<float>::infinity();
  for (const auto& [l, id] : c) max = std::max(max, l);
  double sum = 0.0;
  for (const auto& [l, id] : c) sum += std::exp(static_cast<double>(l) - max);
  return max + std::log(sum);
}

std::vector<std::pair<int32_t, float>> top_n(std::vector<Candidate> c, int n, double lse) {
  std::vector<std::pair<int32_t, float>> out;
  n = std::min<int>(n, static_cast<int>(c.size()));
  std::partial_sort(c.begin(), c.begin() + n, c.end(), by_logit_desc);
  for (int i = 0; i < n; ++i) out.emplace_back(c[i].second, static_cast<float>(c[i].first - lse));
  return out;
}

}  // namespace

float Sampler::logprob_of(const float* logits, int32_t vocab, int32_t id) {
  const float max = max_logit(logits, vocab);
  // The greedy path's sum (a perplexity run scores every token of a text:
  // libm's exp one logit at a time was a third of its time).
  return static_cast<float>(logits[id] - (max + std::log(sum_exp(logits, vocab, max))));
}

namespace {

constexpr float kOut = -std::numeric_limits<float>::infinity();

// Chooses from penalised logits; `allowed` (a bitset, or null) leaves the
// others out. The logprobs are under the distribution the choice was made from.
TokenChoice pick(const float* logits, int32_t vocab, const SamplingParams& p, std::mt19937_64& rng,
                 const uint64_t* allowed, bool greedy_logprob = true) {
  auto candidates = [&](auto score) {
    std::vector<Candidate> c;
    c.reserve(static_cast<size_t>(vocab));
    for (int32_t i = 0; i < vocab; ++i)
      if (!allowed || logits[i] != kOut) c.emplace_back(score(logits[i]), i);
    return c;
  };
  TokenChoice choice;
  if (!p.sampling()) {  // greedy over the penalised scores
    const int32_t best = static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
    choice.id = best;
    if (!greedy_logprob && p.top_n_tokens == 0) return choice;
    const float max = logits[best];
    const double lse = max + std::log(sum_exp(logits, vocab, max));
    choice.logprob = static_cast<float>(max - lse);
    if (p.top_n_tokens > 0) choice.top = top_n(candidates([](float l) { return l; }), p.top_n_tokens, lse);
    return choice;
  }
  // Work in log space relative to the best score: (l - max) / T is 0 for the
  // best token and <= 0 for the others, so any positive temperature, however
  // small, tends to greedy (others go to -inf) instead of overflowing to NaN.
  const double temperature = p.temperature.value_or(1.0);
  const float max = *std::max_element(logits, logits + vocab);
  std::vector<Candidate> cands =
      candidates([&](float l) { return static_cast<float>((static_cast<double>(l) - max) / temperature); });
  if (p.top_k && static_cast<size_t>(*p.top_k) < cands.size()) {
    std::nth_element(cands.begin(), cands.begin() + *p.top_k, cands.end(), by_logit_desc);
    cands.resize(static_cast<size_t>(*p.top_k));
  }
  SortedCandidates sorted(cands);
  if (p.top_p && *p.top_p < 1.0) {
    // Keep the smallest prefix (by probability) whose mass reaches top_p.
    const double lse = log_sum_exp(cands);
    double mass = 0.0;
    size_t keep = 0;
    while (keep < cands.size() && (keep == 0 || mass < *p.top_p)) {
      sorted.ensure(keep + 1);
      mass += std::exp(cands[keep].first - lse);
      ++keep;
    }
    cands.resize(keep);
  }
  if (p.typical_p && *p.typical_p < 1.0) {
    // Keep tokens closest to the expected surprise (entropy) until typical_p mass.
    const double lse = log_sum_exp(cands);
    double entropy = 0.0;
    for (const auto& [l, id] : cands) {
      const double lp = l - lse;
      entropy -= std::exp(lp) * lp;
    }
    std::vector<std::pair<double, size_t>> order(cands.size());
    for (size_t i = 0; i < cands.size(); ++i)
      order[i] = {std::fabs(-(cands[i].first - lse) - entropy), i};
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Candidate> kept;
    double mass = 0.0;
    for (const auto& [shift, i] : order) {
      kept.push_back(cands[i]);
      mass += std::exp(cands[i].first - lse);
      if (mass >= *p.typical_p) break;
    }
    cands = std::move(kept);
  }
  const double lse = log_sum_exp(cands);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const double u = uniform(rng);
  double cumulative = 0.0;
  size_t pick = cands.size() - 1;
  for (size_t i = 0; i < cands.size(); ++i) {
    cumulative += std::exp(cands[i].first - lse);
    if (u < cumulative) {
      pick = i;
      break;
    }
  }
  choice.id = cands[pick].second;
  choice.logprob = static_cast<float>(cands[pick].first - lse);
  if (p.top_n_tokens > 0) choice.top = top_n(std::move(cands), p.top_n_tokens, lse);
  return choice;
}

// log sum exp((l - max) / T) over every token (T = 1 when greedy): the log
// normaliser of the distribution the sampler draws from, relative to max.
double full_log_normaliser(const float* logits, int32_t vocab, const SamplingParams& p, float max) {
  if (!p.sampling()) return std::log(sum_exp(logits, vocab, max));
  const double inv_t = 1.0 / p.temperature.value_or(1.0);
  double sum = 0.0;
  for (int32_t i = 0; i < vocab; ++i) sum += std::exp((static_cast<double>(logits[i]) - max) * inv_t);
  return std::log(sum);
}

}  // namespace

TokenChoice Sampler::choose(float* logits, int32_t vocab, const SamplingParams& p,
                            const TokenCounts& history, std::mt19937_64& rng, const Constraint* constraint) {
  apply_penalties(logits, p, history);
  if (!constraint) return pick(logits, vocab, p, rng, nullptr, p.logprobs);
  // The model's own first choice, when it fits, is the constrained choice:
  // exactly for greedy; for plain sampling too, since a draw from p that is
  // kept when it fits and otherwise redrawn from p restricted to the tokens
  // that fit is a draw from that restriction. Filters (top-k/p, typical-p)
  // act on the restricted distribution, and alternatives come from it: those
  // need the mask.
  const bool first_choice_may_do = !p.top_k && !p.top_p && !p.typical_p && p.top_n_tokens == 0;
  // Logprobs stay the model's (before the grammar), so a token's figure does
  // not depend on which path chose it: `full` is that distribution's log
  // normaliser over every token, on the sampler's scale ((l - max) / T).
  const int32_t best = static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  const float max = logits[best];
  const double temperature = p.sampling() ? p.temperature.value_or(1.0) : 1.0;
  std::optional<double> full;
  if (first_choice_may_do) {
    if (!p.sampling()) {
      if (p.logprobs) full = std::log(sum_exp(logits, vocab, max));
      TokenChoice choice;
      choice.id = best;
      if (!constraint->fits(best)) {
        // The best of the allowed, read off the mask's set bits (few, in
        // most states): no pass that rewrites the row.
        const uint64_t* allowed = constraint->allowed();
        float top = kOut;
        choice.id = -1;
        for (int32_t w = 0; w * 64 < vocab; ++w)
          for (uint64_t bits = allowed[w]; bits; bits &= bits - 1) {
            const int32_t i = w * 64 + __builtin_ctzll(bits);
            if (i < vocab && (choice.id < 0 || logits[i] > top)) top = logits[i], choice.id = i;
          }
      }
      if (full) choice.logprob = static_cast<float>(logits[choice.id] - max - *full);
      return choice;
    } else {
      TokenChoice first = pick(logits, vocab, p, rng, nullptr);
      if (constraint->fits(first.id)) return first;
      full = (static_cast<double>(logits[first.id]) - max) / temperature - first.logprob;  // no second pass
    }
  }
  if (!full) full = full_log_normaliser(logits, vocab, p, max);
  const uint64_t* allowed = constraint->allowed();
  for (int32_t w = 0; w * 64 < vocab; ++w) {  // a word at a time: most are all-in or all-out
    const uint64_t bits = allowed[w];
    const int32_t end = std::min(vocab, (w + 1) * 64);
    if (bits == ~uint64_t{0} && end - w * 64 == 64) continue;
    for (int32_t i = w * 64; i < end; ++i)
      if (!((bits >> (i - w * 64)) & 1)) logits[i] = kOut;
  }
  TokenChoice choice = pick(logits, vocab, p, rng, allowed, /*greedy_logprob=*/false);
  auto model_logprob = [&](int32_t id) {
    return static_cast<float>((static_cast<double>(logits[id]) - max) / temperature - *full);
  };
  choice.logprob = model_logprob(choice.id);
  for (auto& [id, lp] : choice.top) lp = model_logprob(id);
  return choice;
}

}  // namespace flashneox
