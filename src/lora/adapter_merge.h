// LoRAX's per-request adapter merging (`parameters.merged_adapters`): several
// adapters become one by merging each projection's lora_A and lora_B tensors
// separately, as LoRAX does (strategies from PEFT and mergekit):
//   linear       Σ wᵢ·Tᵢ
//   ties         keep the top density·n magnitudes of each Tᵢ, elect a sign
//                per element over the kept values, average the weighted
//                values that agree with it
//   dare_linear  drop each element with probability 1 − density, rescale the
//                kept ones by 1/density, then Σ wᵢ·Tᵢ
//   dare_ties    DARE's drop and rescale, then TIES's sign election
// The merged adapter takes the first adapter's scale (LoRAX copies the first
// adapter_config.json) and targets every projection any of them targets.
//
// Two differences from LoRAX, on purpose: DARE's rescale by 1/density is
// applied (LoRAX's code computes it and drops the result), and DARE's random
// drop is a fixed function of the definition (splitmix64 of the tensor's
// identity and the element's index, below), so one definition always gives
// the same adapter, across evictions and restarts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lora/lora_adapter.h"
#include "lora/merge_spec.h"

namespace flashneox {

// `parts[i]` is the adapter for spec.ids[i]. Throws Error when the adapters
// cannot be merged (a projection with different ranks).
std::shared_ptr<const LoraAdapter> merge_adapters(const std::vector<std::shared_ptr<const LoraAdapter>>& parts,
                                                  const MergeSpec& spec, const std::string& name);

// DARE's keep/drop decision for element `index` (in PEFT's layout: lora_A
// [r, in], lora_B [out, r]) of one tensor: adapter `part` of the definition,
// `layer`, `module`, `tensor` 0 for lora_A and 1 for lora_B.
bool dare_keeps(int part, int layer, LoraModule module, int tensor, uint64_t index, double density);

}  // namespace flashneox
