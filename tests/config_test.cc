#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "io/model_config.h"
#include "test_support.h"

namespace flashneox {
namespace {

const char* kBase = R"({"model_type":"gpt_neox","vocab_size":100,"hidden_size":64,
  "num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":256,
  "rotary_pct":0.25,"rotary_emb_base":10000,"hidden_act":"gelu"})";

std::string with(const std::string& extra) {
  std::string s = kBase;
  s.pop_back();
  return s + "," + extra + "}";
}

void expect_error_naming(const std::string& text, const std::string& field) {
  try {
    ModelConfig::from_json_text(text, "config.json");
    FAIL() << "expected an error naming " << field;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(Config, LegacyPythiaForm) {
  const ModelConfig c = ModelConfig::from_json_text(kBase, "config.json");
  EXPECT_EQ(c.head_size, 16);
  EXPECT_EQ(c.rotary_dims, 4);
  EXPECT_DOUBLE_EQ(c.rotary_base, 10000.0);
  EXPECT_EQ(c.activation, Activation::GeluErf);
  EXPECT_TRUE(c.parallel_residual);
  EXPECT_TRUE(c.attention_bias);
}

TEST(Config, NewTransformersForm) {
  const ModelConfig c =
      ModelConfig::from_file(testing::fixture_model("neox-newconfig-nobias") + "/config.json");
  EXPECT_DOUBLE_EQ(c.rotary_base, 25000.0);
  EXPECT_EQ(c.rotary_dims, c.head_size / 2);
  EXPECT_FALSE(c.attention_bias);
}

TEST(Config, RopeScaling) {
  ModelConfig c = ModelConfig::from_json_text(with(R"("rope_scaling":{"type":"linear","factor":2.0})"), "x");
  EXPECT_EQ(c.rope_scaling, RopeScaling::Linear);
  EXPECT_DOUBLE_EQ(c.rope_factor, 2.0);
  c = ModelConfig::from_json_text(with(R"("rope_scaling":{"rope_type":"dynamic","factor":3})"), "x");
  EXPECT_EQ(c.rope_scaling, RopeScaling::Dynamic);
  expect_error_naming(with(R"("rope_scaling":{"type":"yarn","factor":2.0})"), "rope_scaling");
}

TEST(Config, EveryActivation) {
  for (const char* act : {"gelu_new", "gelu_fast", "gelu_pytorch_tanh"}) {
    std::string text = kBase;
    text.replace(text.find("\"gelu\""), 6, std::string("\"") + act + "\"");
    EXPECT_EQ(ModelConfig::from_json_text(text, "x").activation, Activation::GeluTanh) << act;
  }
}

TEST(Config, RefusalsNameTheField) {
  std::string text = kBase;
  text.replace(text.find("\"gelu\""), 6, "\"relu\"");
  expect_error_naming(text, "hidden_act");
  text = kBase;
  text.replace(text.find("gpt_neox"), 8, "llama");
  expect_error_naming(text, "model_type");
  text = kBase;
  text.replace(text.find("\"num_attention_heads\":4"), 23, "\"num_attention_heads\":5");
  expect_error_naming(text, "num_attention_heads");
  text = kBase;
  text.replace(text.find("\"vocab_size\":100,"), 17, "");
  expect_error_naming(text, "vocab_size");
  expect_error_naming("{not json", "not valid JSON");
}

TEST(Config, IntegersAreRangeCheckedNotTruncated) {
  // 2^32 + 5 must not become 5.
  expect_error_naming(with(R"("max_position_embeddings":4294967301)"), "max_position_embeddings");
  expect_error_naming(with(R"("max_position_embeddings":18446744073709551615)"), "max_position_embeddings");
  expect_error_naming(with(R"("eos_token_id":100)"), "eos_token_id");  // outside the vocabulary
  expect_error_naming(with(R"("eos_token_id":-1)"), "eos_token_id");
  expect_error_naming(R"({"vocab_size":4294967396,"hidden_size":64,"num_attention_heads":4,
    "num_hidden_layers":2,"intermediate_size":256})", "vocab_size");
  EXPECT_EQ(ModelConfig::from_json_text(with(R"("max_position_embeddings":4096)"), "c").max_position_embeddings, 4096);
}

}  // namespace
}  // namespace flashneox
