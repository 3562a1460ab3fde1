#include "lora/merge_spec.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace flashneox {

void MergeSpec::validate() const {
  if (ids.empty()) throw Error("`merged_adapters.ids` must name at least one adapter");
  if (ids.size() > 64) throw Error("`merged_adapters.ids` may name at most 64 adapters");
  if (!weights.empty() && weights.size() != ids.size())
    throw Error(concat("`merged_adapters.weights` has ", weights.size(), " values for ", ids.size(), " ids"));
  for (double w : weights)
    if (!std::isfinite(w)) throw Error("`merged_adapters.weights` must be finite numbers");
  if (strategy != "linear" && strategy != "ties" && strategy != "dare_linear" && strategy != "dare_ties")
    throw Error(concat("`merged_adapters.merge_strategy` '", strategy, "' is not one of linear, ties, dare_linear, dare_ties"));
  if (!(density >= 0 && density <= 1)) throw Error("`merged_adapters.density` must be >= 0.0 and <= 1.0");
  if (majority_sign_method != "total" && majority_sign_method != "frequency")
    throw Error(concat("`merged_adapters.majority_sign_method` '", majority_sign_method, "' is not total or frequency"));
}

std::string MergeSpec::key() const {
  auto exact = [](double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", v);
    return std::string(text);
  };
  std::string k = concat(strategy, "|", exact(density), "|", majority_sign_method);
  for (size_t i = 0; i < ids.size(); ++i)
    k += concat("|", ids[i].size(), ":", ids[i], "*", exact(weights.empty() ? 1.0 : weights[i]));
  return k;
}

}  // namespace flashneox
