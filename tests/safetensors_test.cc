// Loading must turn every kind of damaged checkpoint into a clear error that
// names the file and the tensor: never a crash or an out-of-bounds read.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/checkpoint.h"
#include "model/gpt_neox.h"
#include "test_support.h"

namespace flashneox {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A copy of neox-parallel whose model.safetensors is rebuilt by `mutate`
// from (header JSON, data bytes) or replaced by raw bytes.
class DamagedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = testing::fixture_model("neox-parallel");
    dir_ = testing::make_temp_dir("damaged");
    fs::copy_file(source_ + "/config.json", dir_ + "/config.json");
    const std::string bytes = read_all(source_ + "/model.safetensors");
    uint64_t len;
    std::memcpy(&len, bytes.data(), 8);
    header_ = json::parse(bytes.substr(8, len));
    data_ = bytes.substr(8 + len);
    original_ = bytes;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_raw(const std::string& bytes) {
    std::ofstream(dir_ + "/model.safetensors", std::ios::binary) << bytes;
  }
  void write_header(const json& header, uint64_t claimed_len = 0) {
    const std::string text = header.dump();
    uint64_t len = claimed_len ? claimed_len : text.size();
    std::string bytes(reinterpret_cast<const char*>(&len), 8);
    write_raw(bytes + text + data_);
  }
  // Loading the damaged copy must throw an Error whose text has every part.
  void expect_load_error(const std::vector<std::string>& parts) {
    try {
      GptNeoxModel::load(dir_);
      FAIL() << "loading succeeded";
    } catch (const Error& e) {
      for (const std::string& part : parts)
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
            << "message '" << e.what() << "' lacks '" << part << "'";
    }
  }

  std::string source_, dir_, data_, original_;
  json header_;
};

TEST_F(DamagedCheckpoint, IntactCopyLoads) {
  write_raw(original_);
  EXPECT_NO_THROW(GptNeoxModel::load(dir_));
}

TEST_F(DamagedCheckpoint, TruncatedFile) {
  write_raw(original_.substr(0, original_.size() / 2));
  expect_load_error({"model.safetensors", "past the end"});
}

TEST_F(DamagedCheckpoint, TinyFile) {
  write_raw("abc");
  expect_load_error({"model.safetensors", "not a safetensors file"});
}

TEST_F(DamagedCheckpoint, HeaderLengthLargerThanFile) {
  write_header(header_, 1ull << 40);
  expect_load_error({"model.safetensors", "header length"});
}

TEST_F(DamagedCheckpoint, HeaderLengthCutsTheJson) {
  write_header(header_, 100);
  expect_load_error({"model.safetensors", "not valid JSON"});
}

TEST_F(DamagedCheckpoint, OverlappingTensors) {
  json h = header_;
  h["gpt_neox.final_layer_norm.bias"]["data_offsets"] = h["gpt_neox.final_layer_norm.weight"]["data_offsets"];
  write_header(h);
  expect_load_error({"model.safetensors", "overlap", "final_layer_norm"});
}

TEST_F(DamagedCheckpoint, OffsetsPastTheEnd) {
  json h = header_;
  const uint64_t size = data_.size();
  h["gpt_neox.final_layer_norm.bias"]["data_offsets"] = {size, size + 256};
  write_header(h);
  expect_load_error({"gpt_neox.final_layer_norm.bias", "past the end"});
}

TEST_F(DamagedCheckpoint, SizeDisagreesWithShape) {
  json h = header_;
  h["gpt_neox.final_layer_norm.bias"]["shape"] = {65};
  write_header(h);
  expect_load_error({"gpt_neox.final_layer_norm.bias", "needs"});
}

TEST_F(DamagedCheckpoint, UnknownDtype) {
  json h = header_;
  h["gpt_neox.final_layer_norm.bias"]["dtype"] = "I32";
  write_header(h);
  expect_load_error({"gpt_neox.final_layer_norm.bias", "unsupported tensor dtype 'I32'"});
}

TEST_F(DamagedCheckpoint, DtypeTheFormatDoesNotDefine) {
  json h = header_;
  h["gpt_neox.final_layer_norm.bias"]["dtype"] = "F128";
  write_header(h);
  expect_load_error({"gpt_neox.final_layer_norm.bias", "unknown dtype 'F128'"});
}

TEST_F(DamagedCheckpoint, MissingTensor) {
  json h = header_;
  h.erase("gpt_neox.layers.1.mlp.dense_h_to_4h.weight");
  write_header(h);
  expect_load_error({"missing tensor", "gpt_neox.layers.1.mlp.dense_h_to_4h.weight"});
}

TEST_F(DamagedCheckpoint, WrongShape) {
  json h = header_;
  h["gpt_neox.embed_in.weight"]["shape"] = {500, 128};
  write_header(h);
  expect_load_error({"gpt_neox.embed_in.weight", "[500, 128]", "expected [1000, 64]"});
}

TEST_F(DamagedCheckpoint, HeaderNotAnObject) {
  write_header(json::array({1, 2, 3}));
  expect_load_error({"model.safetensors", "not a JSON object"});
}

TEST_F(DamagedCheckpoint, MissingDirectoryAndFiles) {
  fs::remove(dir_ + "/model.safetensors");
  expect_load_error({"no model.safetensors"});
  fs::remove(dir_ + "/config.json");
  expect_load_error({"config.json"});
}

TEST_F(DamagedCheckpoint, DuplicateTensorName) {
  // JSON keeps the last of two equal keys; the loader must refuse instead.
  std::string text = header_.dump();
  const std::string key = "\"gpt_neox.final_layer_norm.bias\":";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  const size_t end = text.find('}', at) + 1;
  text.insert(1, text.substr(at, end - at) + ",");
  uint64_t len = text.size();
  write_raw(std::string(reinterpret_cast<const char*>(&len), 8) + text + data_);
  expect_load_error({"model.safetensors", "gpt_neox.final_layer_norm.bias", "appears twice"});
}

TEST_F(DamagedCheckpoint, ExtraLayersTheConfigDoesNotDescribe) {
  // The config says one layer fewer than the file holds.
  write_raw(original_);
  json config = json::parse(read_all(dir_ + "/config.json"));
  config["num_hidden_layers"] = config["num_hidden_layers"].get<int>() - 1;
  std::ofstream(dir_ + "/config.json") << config.dump();
  const std::string last = "gpt_neox.layers." + std::to_string(config["num_hidden_layers"].get<int>()) + ".";
  expect_load_error({"does not describe", last, "layers"});
}

TEST_F(DamagedCheckpoint, NanWeightsAreFoundByTheCheck) {
  // One NaN in a layer norm weight: loads as is, refused with check_weights.
  json h = header_;
  const auto& entry = h["gpt_neox.layers.0.input_layernorm.weight"];
  ASSERT_EQ(entry["dtype"], "F32");
  std::string data = data_;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&data[entry["data_offsets"][0].get<size_t>() + 8], &nan, 4);
  const std::string text = h.dump();
  uint64_t len = text.size();
  write_raw(std::string(reinterpret_cast<const char*>(&len), 8) + text + data);
  EXPECT_NO_THROW(GptNeoxModel::load(dir_));
  LoadOptions check;
  check.check_weights = true;
  try {
    GptNeoxModel::load(dir_, nullptr, check);
    FAIL() << "loading succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gpt_neox.layers.0.input_layernorm.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("flat index 2"), std::string::npos) << e.what();
  }
}

TEST_F(DamagedCheckpoint, FifoInPlaceOfAFileIsRefusedWithoutBlocking) {
  // Opening a FIFO for reading would wait forever for a writer.
  ASSERT_EQ(::mkfifo((dir_ + "/model.safetensors").c_str(), 0600), 0);
  expect_load_error({"model.safetensors", "not a regular file"});
  fs::remove(dir_ + "/model.safetensors");
  write_raw(original_);
  fs::remove(dir_ + "/config.json");
  ASSERT_EQ(::mkfifo((dir_ + "/config.json").c_str(), 0600), 0);
  expect_load_error({"config.json", "not a regular file"});
}

TEST(Safetensors, ShardedIndexWithAMissingShardFails) {
  const std::string src = testing::fixture_model("neox-fp16-sharded");
  const std::string dir = testing::make_temp_dir("shards");
  for (const auto& entry : fs::directory_iterator(src))
    if (entry.path().filename() != "model-00003-of-00008.safetensors")
      fs::copy_file(entry.path(), dir + "/" + entry.path().filename().string());
  try {
    GptNeoxModel::load(dir);
    FAIL() << "loading succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00003-of-00008.safetensors"), std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

TEST(Safetensors, OldPythiaBuffersAreSkipped) {
  const Checkpoint ckpt(testing::fixture_model("neox-sequential"));
  EXPECT_TRUE(ckpt.has("gpt_neox.layers.0.attention.rotary_emb.inv_freq"));
  EXPECT_NO_THROW(GptNeoxModel::load(testing::fixture_model("neox-sequential")));
}

}  // namespace
}  // namespace flashneox
