// The bundled model end to end through the flashneox binary: greedy
// `generate` reproduces the reference texts, `perplexity` the reference NLL.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace flashneox {
namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

TEST(GenerateCli, GreedyReproducesTheFourReferenceTexts) {
  std::ifstream in(testing::bundled_model() + "/reference.json");
  const auto ref = nlohmann::json::parse(in);
  ASSERT_EQ(ref["greedy"].size(), 4u);
  for (const auto& g : ref["greedy"]) {
    std::string out;
    const std::string cmd = testing::flashneox_binary() + " generate --temperature 0 --max-new-tokens 48 --ignore-eos --prompt " +
                            shell_quote(g["prompt"].get<std::string>()) + " 2>/dev/null";
    ASSERT_EQ(testing::run_command(cmd, &out, false), 0);
    EXPECT_EQ(out, g["greedy_48_text"].get<std::string>()) << g["prompt"];
  }
}

TEST(GenerateCli, SummaryGoesToStderrAndErrorsAreClear) {
  std::string out;
  ASSERT_EQ(testing::run_command(testing::flashneox_binary() + " generate --prompt 'To be' --max-new-tokens 4 --seed 3 --temperature 0.8 2>&1 >/dev/null", &out, false), 0);
  EXPECT_NE(out.find("tokens/s"), std::string::npos) << out;
  EXPECT_NE(out.find("seed 3"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + " generate --prompt hi --top-p 2", &out), 1);
  EXPECT_NE(out.find("top_p"), std::string::npos) << out;
}

TEST(PerplexityCli, ValidationSplitMatchesReference) {
  std::string out;
  const std::string cmd = testing::flashneox_binary() + " perplexity --file " +
                          testing::test_data("tinyshakespeare.txt") +
                          " --start-token 306218 --window 512 --stride 512 2>/dev/null";
  ASSERT_EQ(testing::run_command(cmd, &out, false), 0) << out;
  const size_t at = out.rfind("nll ");
  ASSERT_NE(at, std::string::npos) << out;
  double nll = 0, ppl = 0;
  ASSERT_EQ(std::sscanf(out.c_str() + at, "nll %lf ppl %lf", &nll, &ppl), 2) << out;
  EXPECT_NEAR(nll, 4.94089, 0.002);
  EXPECT_NEAR(ppl, std::exp(nll), 0.01);
}

}  // namespace
}  // namespace flashneox
