// The definition of a per-request adapter merge (LoRAX's MergedAdapters);
// adapter_merge.h carries it out. Apart so request parsing needs nothing else.
#pragma once

#include <string>
#include <vector>

namespace flashneox {

struct MergeSpec {
  std::vector<std::string> ids;
  std::vector<double> weights;          // one per id; empty: all 1
  std::string strategy = "linear";      // linear, ties, dare_linear, dare_ties
  double density = 1.0;                 // in [0, 1]
  std::string majority_sign_method = "total";  // total, frequency

  // Throws Error naming what is out of range.
  void validate() const;
  // The definition as one string: equal keys merge to the same adapter.
  std::string key() const;
};

}  // namespace flashneox
