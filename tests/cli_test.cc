// The flashneox binary end to end: `logits` writes what the reference holds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/checkpoint.h"
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

TEST(Cli, LogitsHiddenStatesAllMatchTransformers) {
  const std::string dir = testing::fixture_model("neox-parallel");
  const auto ref = testing::load_reference(dir);
  const Checkpoint want = Checkpoint::from_file(dir + "/hidden_states.safetensors");
  const std::string tmp = testing::make_temp_dir("cli-hidden");
  std::string cmd = testing::flashneox_binary() + " logits --model " + dir + " --hidden-states all --prefill 2 --out " +
                    tmp + "/out.safetensors";
  for (const auto& p : ref.prompts) cmd += " --ids " + join(p);
  std::string output;
  ASSERT_EQ(testing::run_command(cmd, &output), 0) << output;
  const Checkpoint got = Checkpoint::from_file(tmp + "/out.safetensors");
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    const std::string key = "hidden_states." + std::to_string(i);
    const TensorView& g = got.get(key);
    const TensorView& w = want.get(key);
    ASSERT_EQ(g.shape, w.shape) << key;
    const auto* gp = static_cast<const float*>(g.data);
    const auto* wp = static_cast<const float*>(w.data);
    EXPECT_LT(testing::max_abs_diff(std::vector<float>(gp, gp + g.numel()), std::vector<float>(wp, wp + w.numel())), 1e-4f)
        << key;
  }
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " logits --model " + dir +
                                     " --ids 1 --hidden-states some --out " + tmp + "/x.safetensors",
                                 &output),
            1);
  EXPECT_NE(output.find("--hidden-states must be final or all"), std::string::npos) << output;
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

#include "cli/commands.h"
#include "cli/model_flags.h"

namespace flashneox {
namespace {

TEST(Cli, EveryFlagACommandAcceptsIsInItsHelpOnce) {
  for (const Command& c : commands()) {
    std::string help;
    ASSERT_EQ(testing::run_command(testing::flashneox_binary() + " " + c.name + " --help", &help), 0) << c.name;
    std::set<std::string> seen;
    for (const Flag& f : c.flags()) {
      EXPECT_TRUE(seen.insert(f.name).second) << c.name << " declares " << f.name << " twice";
      EXPECT_NE(help.find("\n  " + f.name + " "), std::string::npos) << c.name << " --help lacks " << f.name;
      EXPECT_FALSE(f.help.empty()) << f.name;
    }
  }
  // The flags the README's examples and the issue list use are among them.
  std::string help;
  testing::run_command(testing::flashneox_binary() + " generate --help", &help);
  for (const char* flag : {"--frequency-penalty", "--presence-penalty", "--do-sample", "--threads"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  testing::run_command(testing::flashneox_binary() + " serve --help", &help);
  for (const char* flag : {"--http-threads", "--model-id", "--max-batch-size", "--adapter-root"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}

TEST(Cli, UnknownFlagsSuggestTheNearestAndValueErrorsNameTheFlag) {
  std::string output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " generate --prompt x --temprature 0", &output), 1);
  EXPECT_NE(output.find("did you mean --temperature?"), std::string::npos) << output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " generate --prompt x --top-p 2", &output), 1);
  EXPECT_NE(output.find("--top-p must be"), std::string::npos) << output;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " generate --prompt x --max-new-tokens", &output), 1);
  EXPECT_NE(output.find("--max-new-tokens needs a value (N)"), std::string::npos) << output;
}

TEST(Cli, StopTextTakesNewlineAndTabEscapes) {
  EXPECT_EQ(unescape_flag_text("\\n\\n"), "\n\n");
  EXPECT_EQ(unescape_flag_text("a\\tb\\\\n\\x"), "a\tb\\n\\x");
  // Greedy "ROMEO:" on the bundled model ends its first speech with a blank line.
  std::string output;
  ASSERT_EQ(testing::run_command(testing::flashneox_binary() +
                                     " generate --prompt ROMEO: --temperature 0 --max-new-tokens 40 --stop '\\n\\n'",
                                 &output, false),
            0);
  ASSERT_GE(output.size(), 2u);
  EXPECT_EQ(output.substr(output.size() - 2), "\n\n") << output;
  EXPECT_EQ(output.find("\n\n"), output.size() - 2) << output;
}

}  // namespace
}  // namespace flashneox
