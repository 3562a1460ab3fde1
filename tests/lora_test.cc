// LoRA adapters: every PEFT fixture against its reference (logits within 1e-3,
// greedy tokens exact) in every batching mode the parity tests use; a batch
// mixing no adapter and several adapters gives each sequence what it gets
// alone; and every refusal names what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "lora/lora_adapter.h"
#include "model/sequence_runner.h"
#include "test_support.h"

namespace flashneox {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::fixture_model;
using testing::load_reference;
using testing::max_abs_diff;

struct AdapterCase {
  std::string model, adapter;
  const char* mode;
  RunOptions options;
};

std::vector<std::pair<const char*, RunOptions>> modes() {
  std::vector<std::pair<const char*, RunOptions>> out;
  RunOptions o;
  out.push_back({"batched_prefill", o});
  o = {};
  o.block_size = 1;
  out.push_back({"block_size_1", o});
  o = {};
  o.block_size = 7;
  o.scatter_blocks = true;
  out.push_back({"scattered_block_size_7", o});
  o = {};
  o.prefill_half = true;
  out.push_back({"half_prefill_then_decode", o});
  o = {};
  o.prefill_half = true;
  o.block_size = 1;
  out.push_back({"decode_block_size_1", o});
  o = {};
  o.prefill_half = true;
  o.block_size = 7;
  o.scatter_blocks = true;
  out.push_back({"decode_scattered_block_size_7", o});
  o = {};
  o.cached_prefix = 3;
  o.block_size = 7;
  out.push_back({"prefill_extends_cached_prefix", o});
  o = {};
  o.cached_prefix = 2;
  o.prefill_half = true;
  o.block_size = 16;
  o.scatter_blocks = true;
  out.push_back({"cached_prefix_then_decode_scattered", o});
  return out;
}

std::vector<AdapterCase> cases() {
  std::vector<AdapterCase> out;
  for (const std::string model : {"neox-parallel", "neox-sequential"})
    for (const auto& entry : fs::directory_iterator(fixture_model(model) + "/adapters"))
      for (const auto& [name, options] : modes())
        out.push_back({model, entry.path().filename().string(), name, options});
  return out;
}

void PrintTo(const AdapterCase& c, std::ostream* os) { *os << c.model << "/" << c.adapter << "/" << c.mode; }

std::string case_name(const ::testing::TestParamInfo<AdapterCase>& info) {
  std::string name = info.param.model + "_" + info.param.adapter + "_" + info.param.mode;
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

class AdapterParity : public ::testing::TestWithParam<AdapterCase> {};

TEST_P(AdapterParity, LogitsAndGreedyTokensMatchTheReference) {
  const AdapterCase& c = GetParam();
  const std::string base = fixture_model(c.model);
  const std::string dir = base + "/adapters/" + c.adapter;
  auto model = GptNeoxModel::load(base);
  const auto adapter = LoraAdapter::load(dir, c.adapter, model->config());
  const auto ref = load_reference(dir);
  RunOptions options = c.options;
  options.adapters.assign(ref.prompts.size(), adapter.get());
  const auto results = run_sequences(*model, ref.prompts, options);
  int checked = 0;
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    if (!ref.has_logits(i)) continue;
    EXPECT_LT(max_abs_diff(results[i].logits, ref.logits(i)), 1e-3f) << "prompt " << i;
    ++checked;
  }
  EXPECT_GE(checked, 2);
  ASSERT_EQ(ref.greedy.size(), ref.prompts.size());
  const auto greedy = greedy_continue(*model, ref.prompts, static_cast<int>(ref.greedy[0].size()), options);
  for (size_t i = 0; i < ref.prompts.size(); ++i) EXPECT_EQ(greedy[i], ref.greedy[i]) << "prompt " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdapterParity, ::testing::ValuesIn(cases()), case_name);

// No adapter, lora-a, lora-b and lora-c-rslora in one batch: each sequence's
// logits equal the ones it gets alone (the same bits up to 1e-5), with f32
// weights and an f32 cache, and with int8 weights, f16 adapters and an f16 cache.
TEST(Lora, MixedBatchGivesEachSequenceWhatItGetsAlone) {
  for (const std::string model_name : {"neox-parallel", "neox-sequential"})
  for (const bool low_precision : {false, true}) {
    const std::string base = fixture_model(model_name);
    LoadOptions load;
    if (low_precision) load.weight_dtype = DType::I8;
    auto model = GptNeoxModel::load(base, nullptr, load);
    std::vector<std::shared_ptr<const LoraAdapter>> adapters = {nullptr};
    for (const auto& entry : fs::directory_iterator(base + "/adapters"))
      adapters.push_back(LoraAdapter::load(entry.path().string(), entry.path().filename().string(), model->config(),
                                           lora_dtype_for(model->weights().dtype)));
    const auto ref = load_reference(base);
    std::vector<std::vector<int32_t>> prompts;
    RunOptions mixed;
    mixed.prefill_half = true;
    mixed.block_size = 7;
    mixed.scatter_blocks = true;
    mixed.kv_dtype = low_precision ? DType::F16 : DType::F32;
    for (size_t i = 0; i < ref.prompts.size(); ++i)
      for (const auto& a : adapters) {
        prompts.push_back(ref.prompts[i]);
        mixed.adapters.push_back(a.get());
      }
    const auto together = run_sequences(*model, prompts, mixed);
    for (size_t s = 0; s < prompts.size(); ++s) {
      RunOptions alone;
      alone.adapters = {mixed.adapters[s]};
      alone.kv_dtype = mixed.kv_dtype;
      const auto one = run_sequences(*model, {prompts[s]}, alone);
      EXPECT_LT(max_abs_diff(together[s].logits, one[0].logits), 1e-5f)
          << model_name << (low_precision ? " int8/f16 cache" : "") << " sequence " << s;
    }
  }
}

// f16, bf16 and int8 weights (with the adapter kept in f16 beside them, as the
// server keeps it), each with an f32 and an f16 cache: the adapter's effect
// (logits with it minus logits without, at that precision)
// is the f32 model's within a small fraction of its size: 0.5% for f16, 1.5%
// for bf16, 6% for int8 (which also quantizes the activations, per row).
TEST(Lora, EveryWeightAndCacheDtypeKeepsTheAdaptersEffect) {
  for (const std::string model_name : {"neox-parallel", "neox-sequential"}) {
    const std::string base = fixture_model(model_name);
    auto exact = GptNeoxModel::load(base);
    const auto ref = load_reference(base);
    auto adapter = LoraAdapter::load(base + "/adapters/lora-a", "a", exact->config());
    auto adapter_f16 = LoraAdapter::load(base + "/adapters/lora-a", "a", exact->config(), DType::F16);
    RunOptions plain, with_adapter;
    auto effect = [&](GptNeoxModel& model) {
      with_adapter.adapters.assign(ref.prompts.size(),
                                   model.weights().dtype == DType::F32 ? adapter.get() : adapter_f16.get());
      const auto without = run_sequences(model, ref.prompts, plain);
      const auto with = run_sequences(model, ref.prompts, with_adapter);
      std::vector<std::vector<float>> out;
      for (size_t i = 0; i < with.size(); ++i) {
        out.push_back(with[i].logits);
        for (size_t k = 0; k < out.back().size(); ++k) out.back()[k] -= without[i].logits[k];
      }
      return out;
    };
    const auto exact_effect = effect(*exact);
    for (const auto& [weights, tolerance] : {std::pair{DType::F16, 0.005f}, {DType::BF16, 0.015f}, {DType::I8, 0.06f}})
      for (const DType kv : {DType::F32, DType::F16}) {
        LoadOptions load;
        load.weight_dtype = weights;
        auto model = GptNeoxModel::load(base, nullptr, load);
        plain.kv_dtype = with_adapter.kv_dtype = kv;
        const auto low_effect = effect(*model);
        for (size_t i = 0; i < ref.prompts.size(); ++i) {
          float size = 0;
          for (float v : exact_effect[i]) size = std::max(size, std::fabs(v));
          EXPECT_GT(size, 1.0f) << "the adapter barely changes the logits, so this test shows nothing";
          EXPECT_LE(max_abs_diff(low_effect[i], exact_effect[i]), tolerance * size)
              << model_name << " " << dtype_name(weights) << " weights, " << dtype_name(kv) << " cache, prompt " << i;
        }
      }
  }
}

// A copy of lora-a whose config or weights `mutate` damages.
std::string damaged_adapter(const std::function<void(json&)>& mutate_config, const std::string& tag) {
  const std::string src = fixture_model("neox-parallel") + "/adapters/lora-a";
  const std::string dir = testing::make_temp_dir("adapter-" + tag);
  fs::copy_file(src + "/adapter_model.safetensors", dir + "/adapter_model.safetensors");
  std::ifstream in(src + "/adapter_config.json");
  json config = json::parse(in);
  mutate_config(config);
  std::ofstream(dir + "/adapter_config.json") << config.dump();
  return dir;
}

std::string refusal(const std::string& dir) {
  auto model = GptNeoxModel::load(fixture_model("neox-parallel"));
  try {
    LoraAdapter::load(dir, "x", model->config());
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(Lora, RefusalsNameTheFieldOrTensor) {
  struct Bad {
    std::function<void(json&)> mutate;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {[](json& c) { c["use_dora"] = true; }, "use_dora"},
      {[](json& c) { c["lora_bias"] = true; }, "lora_bias"},
      {[](json& c) { c["modules_to_save"] = json::array({"embed_out"}); }, "modules_to_save"},
      {[](json& c) { c["peft_type"] = "IA3"; }, "peft_type"},
      {[](json& c) { c["r"] = 4; }, "lora_A.weight has shape [8, 64]"},
      {[](json& c) { c["target_modules"] = json::array({"dense"}); }, "does not target"},
      {[](json& c) { c["target_modules"] = json::array({"q_proj", "v_proj"}); }, "does not target"},
      {[](json& c) { c["layers_to_transform"] = json::array({7}); }, "layers_to_transform"},
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    const std::string why = refusal(damaged_adapter(bad[i].mutate, std::to_string(i)));
    EXPECT_NE(why.find(bad[i].says), std::string::npos) << i << ": " << why;
  }
  // The adapter of another model: weights for layers it does not have, or
  // shapes that do not fit, each named.
  for (const char* other_name : {"neox-long", "neox-fullvocab"}) {
    auto other = GptNeoxModel::load(fixture_model(other_name));
    try {
      LoraAdapter::load(fixture_model("neox-parallel") + "/adapters/lora-a", "a", other->config());
      FAIL() << "an adapter for another model loaded";
    } catch (const Error& e) {
      const std::string why = e.what();
      EXPECT_TRUE(why.find("has shape") != std::string::npos || why.find("another architecture") != std::string::npos)
          << other_name << ": " << why;
    }
  }
  EXPECT_NE(refusal("/nonexistent").find("adapter_config.json"), std::string::npos);
}

TEST(Lora, TargetsAsRegexRankPatternAndLayerFilter) {
  auto model = GptNeoxModel::load(fixture_model("neox-parallel"));
  // A regex naming all four modules loads the same adapter as the list does.
  const auto as_regex = LoraAdapter::load(
      damaged_adapter([](json& c) { c["target_modules"] = ".*\\.(query_key_value|dense|dense_h_to_4h|dense_4h_to_h)"; },
                      "regex"),
      "re", model->config());
  const auto as_list = LoraAdapter::load(fixture_model("neox-parallel") + "/adapters/lora-a", "l", model->config());
  ASSERT_NE(as_regex->find(0, LoraModule::Dense), nullptr);
  EXPECT_EQ(as_regex->find(0, LoraModule::Dense)->a, as_list->find(0, LoraModule::Dense)->a);
  EXPECT_FLOAT_EQ(as_list->find(0, LoraModule::Qkv)->scale, 2.0f);  // alpha 16 / r 8
  // alpha_pattern changes one module's scale only; rslora divides by sqrt(r).
  const auto patterned = LoraAdapter::load(
      damaged_adapter([](json& c) { c["alpha_pattern"] = {{"dense_h_to_4h", 4}}; }, "alpha"), "p", model->config());
  EXPECT_FLOAT_EQ(patterned->find(1, LoraModule::FcIn)->scale, 0.5f);
  EXPECT_FLOAT_EQ(patterned->find(1, LoraModule::Dense)->scale, 2.0f);
  const auto rs = LoraAdapter::load(fixture_model("neox-parallel") + "/adapters/lora-c-rslora", "c", model->config());
  EXPECT_FLOAT_EQ(rs->find(0, LoraModule::Dense)->scale, static_cast<float>(4.0 / std::sqrt(2.0)));
}

}  // namespace
}  // namespace flashneox
