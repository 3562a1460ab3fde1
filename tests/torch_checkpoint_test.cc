// torch.save checkpoints (pytorch_model.bin): the fixtures of tests/data/torch
// (made by scripts/make-torch-fixtures.py) give the same logits as their
// safetensors twins, single and sharded, f32/f16/bf16; everything else is
// refused with a message, and a malicious pickle is refused without running.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/torch_file.h"
#include "model/sequence_runner.h"
#include "test_support.h"

namespace flashneox {
namespace {

namespace fs = std::filesystem;
using testing::max_abs_diff;

std::string torch_fixture(const std::string& name) { return testing::test_data("torch/" + name); }

std::vector<SequenceResult> logits_of(const std::string& dir) {
  auto model = GptNeoxModel::load(dir);
  return run_sequences(*model, {{3, 1, 4, 1, 5, 9, 2, 6}, {2, 7, 1, 8}}, RunOptions{});
}

void expect_same_logits(const std::string& a, const std::string& b) {
  const auto x = logits_of(a), y = logits_of(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(max_abs_diff(x[i].logits, y[i].logits), 0.0f) << a << " vs " << b;
}

std::string load_error(const std::string& dir) {
  try {
    GptNeoxModel::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TorchCheckpoint, EveryFixtureMatchesItsSafetensorsTwin) {
  const std::string safetensors = testing::fixture_model("neox-parallel");
  expect_same_logits(torch_fixture("bin-f32"), safetensors);
  expect_same_logits(torch_fixture("bin-sharded"), safetensors);
  expect_same_logits(torch_fixture("bin-f16"), torch_fixture("st-f16"));
  expect_same_logits(torch_fixture("bin-bf16"), torch_fixture("st-bf16"));
}

TEST(TorchCheckpoint, OldPythiaBuffersAreReadAndSkipped) {
  const TorchFile file(torch_fixture("bin-f32") + "/pytorch_model.bin");
  const TensorView& mask = file.tensors().at("gpt_neox.layers.0.attention.bias");
  EXPECT_EQ(mask.dtype_text, "BOOL");
  EXPECT_FALSE(mask.usable);
  EXPECT_EQ(mask.shape, (std::vector<int64_t>{1, 1, 8, 8}));
  EXPECT_EQ(static_cast<const unsigned char*>(mask.data)[0], 1);  // tril: [0][0] set, [0][1] not
  EXPECT_EQ(static_cast<const unsigned char*>(mask.data)[1], 0);
  EXPECT_TRUE(file.tensors().at("gpt_neox.embed_in.weight").usable);
}

TEST(TorchCheckpoint, AMaliciousPickleIsRefusedWithoutRunning) {
  const fs::path marker = fs::current_path() / "PWNED";
  fs::remove(marker);
  const std::string e = load_error(torch_fixture("malicious"));
  EXPECT_NE(e.find("global 'posix.system' is not allowed"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(marker));
}

TEST(TorchCheckpoint, RefusalsSayWhatIsWrong) {
  std::string e = load_error(torch_fixture("legacy"));
  EXPECT_NE(e.find("legacy (pre-zip)"), std::string::npos) << e;
  e = load_error(torch_fixture("noncontiguous"));
  EXPECT_NE(e.find("is not contiguous"), std::string::npos) << e;
  e = load_error(torch_fixture("set-opcode"));
  EXPECT_NE(e.find("pickle opcode 0x8f"), std::string::npos) << e;
  // Truncated: cut the archive anywhere and it is an error, never a crash.
  const std::string whole = torch_fixture("bin-f16") + "/pytorch_model.bin";
  const auto size = fs::file_size(whole);
  const std::string dir = testing::make_temp_dir("torch-truncated");
  fs::copy_file(torch_fixture("bin-f16") + "/config.json", dir + "/config.json");
  std::string bytes(size, '\0');
  std::ifstream(whole, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(size));
  for (const size_t keep : {size_t{10}, size / 3, size / 2, size - 30, size - 1}) {
    std::ofstream(dir + "/pytorch_model.bin", std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(keep));
    EXPECT_FALSE(load_error(dir).empty()) << "kept " << keep << " of " << size << " bytes";
  }
  // A damaged pickle (bytes of data.pkl overwritten) is an error too.
  const size_t pickle_at = bytes.find("data.pkl") + 8;
  for (size_t i = 0; i < 64 && pickle_at + 40 + i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[pickle_at + 40 + i] = static_cast<char>(0xff);
    std::ofstream(dir + "/pytorch_model.bin", std::ios::binary | std::ios::trunc).write(damaged.data(), static_cast<std::streamsize>(damaged.size()));
    try {
      GptNeoxModel::load(dir);
    } catch (const Error&) {
    }
  }
  // Found by torch_file_fuzz: a ZIP64 locator in a file shorter than the ZIP64 record.
  const unsigned char short_zip64[] = {
      'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 'P', 'K', 6, 7, 0, 0, 0, 0, 0xdb, 6, 0, 0, 0, 0x20, 0, 0,
      1, 0, 0, 0, 'P', 'K', 5, 6, 0, 0, 0, 0, 8, 0, 8, 0, 0x3d, 2, 0, 0, 0xb8, 4, 0, 0, 0, 0};
  std::ofstream(dir + "/pytorch_model.bin", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(short_zip64), sizeof short_zip64);
  e = load_error(dir);
  EXPECT_NE(e.find("bad ZIP64 end-of-central-directory record"), std::string::npos) << e;
  const std::string empty = testing::make_temp_dir("torch-empty");
  fs::copy_file(torch_fixture("bin-f16") + "/config.json", empty + "/config.json");
  e = load_error(empty);
  EXPECT_NE(e.find("pytorch_model.bin"), std::string::npos) << e;
}

}  // namespace
}  // namespace flashneox
