// The flashneox binary end to end: `logits` writes what the reference holds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "test_support.h"

namespace flashneox {
namespace {

std::string join(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? "," : "") << ids[i];
  return out.str();
}

TEST(Cli, LogitsCommandMatchesReference) {
  const std::string dir = testing::fixture_model("neox-sequential");
  const auto ref = testing::load_reference(dir);
  const std::string tmp = testing::make_temp_dir("cli");
  std::string cmd = testing::flashneox_binary() + " logits --model " + dir + " --prefill 3 --block-size 7 --out " + tmp + "/out.safetensors";
  for (const auto& p : ref.prompts) cmd += " --ids " + join(p);
  std::string output;
  ASSERT_EQ(testing::run_command(cmd, &output), 0) << output;
  const Checkpoint got = Checkpoint::from_file(tmp + "/out.safetensors");
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    const TensorView& logits = got.get("logits." + std::to_string(i));
    std::vector<float> values(static_cast<const float*>(logits.data),
                              static_cast<const float*>(logits.data) + logits.numel());
    EXPECT_LT(testing::max_abs_diff(values, ref.logits(i)), 1e-3f);
    EXPECT_TRUE(got.has("hidden." + std::to_string(i)));
  }
  std::filesystem::remove_all(tmp);
}

TEST(Cli, LogitsWithAdaptersPerSequenceInOneBatch) {
  // Prompt i runs with the adapter its reference was made with (or none).
  const std::string dir = testing::fixture_model("neox-parallel");
  const std::vector<std::string> names = {"", "lora-a", "lora-b", "lora-c-rslora"};
  const std::string tmp = testing::make_temp_dir("cli-lora");
  std::string cmd = testing::flashneox_binary() + " logits --model " + dir + " --prefill 2 --out " + tmp + "/out.safetensors";
  for (size_t a = 1; a < names.size(); ++a) cmd += " --lora " + names[a] + "=" + dir + "/adapters/" + names[a];
  std::vector<std::vector<float>> expected;
  for (size_t a = 0; a < names.size(); ++a) {
    const auto ref = testing::load_reference(a == 0 ? dir : dir + "/adapters/" + names[a]);
    cmd += " --ids " + join(ref.prompts[2]) + (a == 0 ? "" : "@" + names[a]);
    expected.push_back(ref.logits(2));
  }
  std::string output;
  ASSERT_EQ(testing::run_command(cmd, &output), 0) << output;
  const Checkpoint got = Checkpoint::from_file(tmp + "/out.safetensors");
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorView& logits = got.get("logits." + std::to_string(i));
    std::vector<float> values(static_cast<const float*>(logits.data),
                              static_cast<const float*>(logits.data) + logits.numel());
    EXPECT_LT(testing::max_abs_diff(values, expected[i]), 1e-3f) << names[i];
  }
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " logits --model " + dir + " --ids 1,2@nope --out " +
                                     tmp + "/x.safetensors",
                                 &output),
            1);
  EXPECT_NE(output.find("no --lora nope=DIR"), std::string::npos) << output;
  std::filesystem::remove_all(tmp);
}

TEST(Cli, ErrorsAreMessagesNotCrashes) {
  std::string output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " logits --model /nonexistent --ids 1 --out /tmp/x", &output), 1);
  EXPECT_NE(output.find("error"), std::string::npos) << output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " logits --bogus", &output), 1);
  EXPECT_NE(output.find("unknown option '--bogus'"), std::string::npos) << output;
  const std::string dir = testing::fixture_model("neox-parallel");
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " logits --model " + dir + " --ids 1,99999 --out /tmp/x", &output), 1);
  EXPECT_NE(output.find("outside the vocabulary"), std::string::npos) << output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " nosuchcommand", &output), 2);
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " serve --help", &output), 0);
  EXPECT_NE(output.find("--api-key"), std::string::npos) << output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " --version", &output), 0);
  EXPECT_NE(output.find("flashneox 0."), std::string::npos) << output;
}

}  // namespace
}  // namespace flashneox

namespace flashneox {
namespace {

TEST(Cli, TokenizeRoundTripsJsonLines) {
  const std::string tok = testing::test_data("gpt-neox-20b-tokenizer.json");
  const std::string tmp = testing::make_temp_dir("tok");
  {
    std::ofstream in(tmp + "/in.jsonl");
    in << R"({"text": "Hello world"})" << "\n" << R"({"text": 7})" << "\n"
       << R"({"text": "日本語 <|endoftext|>"})" << "\n";
  }
  std::string output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " tokenize --tokenizer " + tok + " < " + tmp + "/in.jsonl", &output), 1);
  EXPECT_NE(output.find(R"({"ids":[12092,1533]})"), std::string::npos) << output;
  EXPECT_NE(output.find(R"({"error":)"), std::string::npos) << output;  // the bad line, in place
  {
    std::ofstream in(tmp + "/ids.jsonl");
    in << R"({"ids": [12092, 1533]})" << "\n";
  }
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " tokenize --decode --tokenizer " + tok + " < " + tmp + "/ids.jsonl", &output), 0);
  EXPECT_NE(output.find(R"({"text":"Hello world"})"), std::string::npos) << output;
  std::filesystem::remove_all(tmp);
}

}  // namespace
}  // namespace flashneox
