#include "test_support.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

namespace flashneox::testing {

namespace fs = std::filesystem;

std::string test_data(const std::string& relative) {
  const fs::path path = fs::path(FLASHNEOX_TEST_DATA) / relative;
  if (!fs::exists(path))
    throw std::runtime_error("missing test fixture " + path.string() +
                             " (copy it from ../shared/fixtures; see tests/data/README.md)");
  return path.string();
}

std::string fixture_model(const std::string& name) { return test_data("fixtures/" + name); }

std::string bundled_model() {
  const fs::path path = fs::path(FLASHNEOX_MODELS) / "neox-shakespeare";
  if (!fs::exists(path / "model.safetensors"))
    throw std::runtime_error("missing bundled model " + path.string());
  return path.string();
}

std::string flashneox_binary() { return FLASHNEOX_BINARY; }

std::vector<std::string> fixture_model_names() {
  return {"neox-parallel",      "neox-sequential",    "neox-tied-bf16",
          "neox-fp16-sharded",  "neox-linear-rope",   "neox-fullvocab",
          "neox-dynamic-rope",  "neox-newconfig-nobias", "neox-long"};
}

Reference load_reference(const std::string& dir) {
  Reference ref;
  if (!fs::exists(dir + "/reference.json"))
    throw std::runtime_error("missing test fixture " + dir + "/reference.json");
  std::ifstream in(dir + "/reference.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  for (const auto& p : j.at("prompts")) ref.prompts.push_back(p.get<std::vector<int32_t>>());
  for (const char* key : {"greedy_16", "greedy_8"})
    if (j.contains(key))
      for (const auto& g : j[key]) ref.greedy.push_back(g.get<std::vector<int32_t>>());
  ref.tensors = std::make_unique<Checkpoint>(Checkpoint::from_file(dir + "/reference.safetensors"));
  return ref;
}

bool Reference::has_logits(size_t i) const { return tensors->has("logits." + std::to_string(i)); }

static std::vector<float> read_f32(const Checkpoint& c, const std::string& name) {
  const TensorView& v = c.get(name);
  std::vector<float> out(static_cast<size_t>(v.numel()));
  convert_to_f32(v.dtype, v.data, out.data(), out.size());
  return out;
}

std::vector<float> Reference::logits(size_t i) const {
  return read_f32(*tensors, "logits." + std::to_string(i));
}
std::vector<float> Reference::hidden(size_t i) const {
  return read_f32(*tensors, "hidden." + std::to_string(i));
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (!(d <= worst)) worst = d;  // NaN propagates as a failure
  }
  return worst;
}

std::string make_temp_dir(const std::string& tag) {
  std::random_device rd;
  const fs::path dir = fs::temp_directory_path() /
                       ("flashneox-" + tag + "-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(dir);
  return dir.string();
}

int run_command(const std::string& command, std::string* output, bool merge_stderr) {
  FILE* pipe = ::popen((merge_stderr ? command + " 2>&1" : command).c_str(), "r");
  if (!pipe) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) text.append(buf, n);
  const int status = ::pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace flashneox::testing
