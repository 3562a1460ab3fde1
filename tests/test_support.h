// Shared by the tests: where the fixtures are, and their reference outputs.
// A fixture that cannot be found fails the test loudly; nothing is skipped.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint.h"

namespace flashneox::testing {

// Path of a file under tests/data; fails the test (throws) if it is missing.
std::string test_data(const std::string& relative);
// tests/data/fixtures/models-equivalent folder of a fixture model.
std::string fixture_model(const std::string& name);
// models/neox-shakespeare, the bundled model.
std::string bundled_model();
std::string flashneox_binary();

// The fixture models of ../shared/fixtures (all but the trained one).
std::vector<std::string> fixture_model_names();

struct Reference {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> greedy;  // greedy_16 or greedy_8; empty when none
  std::unique_ptr<Checkpoint> tensors;       // logits.<i>, hidden.<i>
  bool has_logits(size_t i) const;
  std::vector<float> logits(size_t i) const;
  std::vector<float> hidden(size_t i) const;
};
Reference load_reference(const std::string& dir);

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

// A fresh empty directory under the system temp folder.
std::string make_temp_dir(const std::string& tag);

// Runs a shell command; returns its exit status and fills `output` with its
// stdout (and stderr too when merge_stderr).
int run_command(const std::string& command, std::string* output = nullptr,
                bool merge_stderr = true);

}  // namespace flashneox::testing
