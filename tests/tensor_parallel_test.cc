// Tensor parallelism end to end: `mpirun -np 2 flashneox ...` (one thread per
// rank, on loopback) against the same command in one process. Logits and
// hidden states of every fixture model in the parity tests' batching modes and
// with LoRA adapters,
// the bundled model's greedy texts in every weight and KV dtype, and the
// errors a job must give instead of hanging: heads that do not divide, a rank
// with another config.json or another build, a rank whose weights are
// truncated; and two hosts
// (network namespaces) over TCP. The in-process twin, run under the
// sanitizers too, is tensor_parallel_forward_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/checkpoint.h"
#include "test_support.h"

namespace flashneox {
namespace {

namespace fs = std::filesystem;

// Two ranks on this machine, one compute thread each (Open MPI refuses root
// and more ranks than cores without these flags).
std::string mpirun(int ranks = 2) {
  return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " ";
}

std::string join(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? "," : "") << ids[i];
  return out.str();
}

std::vector<float> values(const Checkpoint& c, const std::string& name) {
  const TensorView& t = c.get(name);
  EXPECT_EQ(t.dtype, DType::F32) << name;
  return {static_cast<const float*>(t.data), static_cast<const float*>(t.data) + t.numel()};
}

TEST(TensorParallel, MpirunIsInstalled) {
  std::string output;
  ASSERT_EQ(testing::run_command("mpirun --version", &output), 0)
      << "mpirun not found: `make deps` installs Open MPI (openmpi-bin, libopenmpi-dev)\n" << output;
}

// Every fixture, six batching modes: the same logits and hidden states (every
// layer's, in one mode) within 1e-4 on two ranks as in one process.
TEST(TensorParallel, EveryFixtureGivesTheSingleProcessLogits) {
  const char* modes[] = {"", "--block-size 1", "--block-size 7 --scatter-blocks", "--prefill 3",
                         "--prefill 2 --block-size 1", "--prefill 3 --block-size 7 --scatter-blocks --hidden-states all"};
  const std::string tmp = testing::make_temp_dir("tp-logits");
  for (const std::string& name : testing::fixture_model_names()) {
    const std::string dir = testing::fixture_model(name);
    const auto ref = testing::load_reference(dir);
    std::string ids;
    for (const auto& p : ref.prompts) ids += " --ids " + join(p);
    for (const char* mode : modes) {
      const std::string what = name + " [" + mode + "]";
      const std::string args = " logits --threads 1 --model " + dir + ids + " " + mode + " --out ";
      std::string output;
      ASSERT_EQ(testing::run_command(testing::flashneox_binary() + args + tmp + "/one.safetensors", &output), 0)
          << what << "\n" << output;
      ASSERT_EQ(testing::run_command(mpirun() + testing::flashneox_binary() + args + tmp + "/two.safetensors", &output), 0)
          << what << "\n" << output;
      const Checkpoint one = Checkpoint::from_file(tmp + "/one.safetensors");
      const Checkpoint two = Checkpoint::from_file(tmp + "/two.safetensors");
      ASSERT_EQ(one.names(), two.names()) << what;
      for (const std::string& tensor : one.names()) {
        const std::vector<float> a = values(one, tensor), b = values(two, tensor);
        ASSERT_EQ(a.size(), b.size()) << what << " " << tensor;
        EXPECT_LT(testing::max_abs_diff(a, b), 1e-4f) << what << " " << tensor;
      }
    }
  }
  fs::remove_all(tmp);
}

// LoRA adapters split as LoRAX shards them (B by output for column-parallel
// projections, A by input for row-parallel ones): the fixtures' PEFT adapters
// (rsLoRA among them) mixed with base-model rows in one batch, prefilled and
// decoded.
TEST(TensorParallel, AdaptersGiveTheSingleProcessLogits) {
  const std::string tmp = testing::make_temp_dir("tp-lora");
  for (const std::string name : {"neox-parallel", "neox-sequential"}) {
    const std::string dir = testing::fixture_model(name);
    std::string args = " logits --threads 1 --prefill 2 --block-size 4 --model " + dir;
    std::vector<std::string> adapters;
    for (const auto& entry : fs::directory_iterator(dir + "/adapters")) adapters.push_back(entry.path().filename());
    ASSERT_GE(adapters.size(), 2u) << name;
    std::sort(adapters.begin(), adapters.end());
    for (const std::string& a : adapters) args += " --lora " + a + "=" + dir + "/adapters/" + a;
    const auto ref = testing::load_reference(dir);
    for (size_t i = 0; i < ref.prompts.size(); ++i)
      args += " --ids " + join(ref.prompts[i]) + (i % 3 == 2 ? "" : "@" + adapters[i % adapters.size()]);
    std::string output;
    ASSERT_EQ(testing::run_command(testing::flashneox_binary() + args + " --out " + tmp + "/one.safetensors", &output), 0)
        << output;
    ASSERT_EQ(testing::run_command(mpirun() + testing::flashneox_binary() + args + " --out " + tmp + "/two.safetensors",
                                   &output),
              0)
        << output;
    const Checkpoint one = Checkpoint::from_file(tmp + "/one.safetensors");
    const Checkpoint two = Checkpoint::from_file(tmp + "/two.safetensors");
    for (const std::string& tensor : one.names())
      EXPECT_LT(testing::max_abs_diff(values(one, tensor), values(two, tensor)), 1e-4f) << name << " " << tensor;
  }
  fs::remove_all(tmp);
}

std::string generate(const std::string& prefix, const std::string& flags) {
  std::string output;
  const std::string cmd = prefix + testing::flashneox_binary() +
                          " generate --threads 1 --temperature 0 --max-new-tokens 48 --prompt 'ROMEO:' " + flags +
                          " 2>/dev/null";
  EXPECT_EQ(testing::run_command(cmd, &output, /*merge_stderr=*/false), 0) << cmd << "\n" << output;
  return output;
}

// The bundled model's greedy text on two ranks is the text of one process,
// in every weight dtype and with an f16 KV cache. (int8 and 4-bit quantise
// each rank's activation slice on its own: their texts may part late.)
TEST(TensorParallel, TheBundledModelsGreedyTextsAreTheSame) {
  for (const std::string flags : {"", "--kv-cache-dtype f16", "--dtype f16", "--dtype bf16"}) {
    const std::string one = generate("", flags);
    EXPECT_GT(one.size(), 20u) << flags;
    EXPECT_EQ(generate(mpirun(), flags), one) << flags;
  }
  for (const std::string flags : {"--dtype int8", "--dtype q4 --kv-cache-dtype f16"}) {
    const std::string one = generate("", flags), two = generate(mpirun(), flags);
    EXPECT_GT(two.size(), 20u) << flags;
    EXPECT_EQ(two.substr(0, 10), one.substr(0, 10)) << flags;
  }
}

TEST(TensorParallel, HeadsThatDoNotDivideAreAClearError) {
  std::string output;
  // The bundled model has 6 heads.
  EXPECT_NE(testing::run_command(mpirun(4) + testing::flashneox_binary() + " generate --threads 1 --prompt hi", &output), 0);
  EXPECT_NE(output.find("6 attention heads cannot be split evenly over 4 ranks"), std::string::npos) << output;
}

// Each rank reads the model folder at the same path on its own machine: here
// two working directories stand for two machines (a relative --model), one
// with another config.json, then one with truncated weights.
TEST(TensorParallel, ARankWithAnotherModelOrDamagedWeightsStopsTheJob) {
  const std::string tmp = testing::make_temp_dir("tp-ranks");
  const std::string src = testing::fixture_model("neox-parallel");
  for (const char* machine : {"/a", "/b"}) {
    fs::create_directories(tmp + machine + "/m");
    for (const char* f : {"config.json", "model.safetensors"})
      fs::copy_file(src + "/" + f, tmp + machine + "/m/" + f);
  }
  const std::string job = "mpirun --allow-run-as-root --oversubscribe -np 1 --wdir " + tmp + "/a " +
                          testing::flashneox_binary() + " logits --threads 1 --model m --ids 1,2,3 --out " + tmp +
                          "/out.safetensors : -np 1 --wdir " + tmp + "/b " + testing::flashneox_binary() + " logits";
  std::string output;
  ASSERT_EQ(testing::run_command(job, &output), 0) << output;  // the same model: it runs

  std::string config;
  {
    std::ifstream in(tmp + "/b/m/config.json");
    config.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(tmp + "/b/m/config.json") << config << "\n";  // one more byte: another model
  EXPECT_NE(testing::run_command(job, &output), 0);
  EXPECT_NE(output.find("rank 1: this rank runs"), std::string::npos) << output;
  EXPECT_NE(output.find("every rank must run the same flashneox on the same model"), std::string::npos) << output;

  fs::copy_file(tmp + "/a/m/config.json", tmp + "/b/m/config.json", fs::copy_options::overwrite_existing);
  // Another build of flashneox on rank 1 (one byte more).
  fs::copy_file(testing::flashneox_binary(), tmp + "/other-flashneox");
  std::ofstream(tmp + "/other-flashneox", std::ios::app) << 'x';
  std::string other_binary = job;
  other_binary.replace(other_binary.rfind(testing::flashneox_binary()), testing::flashneox_binary().size(),
                       tmp + "/other-flashneox");
  EXPECT_NE(testing::run_command(other_binary, &output), 0);
  EXPECT_NE(output.find("every rank must run the same flashneox on the same model"), std::string::npos) << output;

  fs::resize_file(tmp + "/b/m/model.safetensors", 1000);
  EXPECT_NE(testing::run_command(job, &output), 0);
  EXPECT_NE(output.find("could not be loaded on every rank: rank 1: m/model.safetensors"), std::string::npos) << output;
  fs::remove_all(tmp);
}

// Two hosts for real: one rank in each of two network namespaces joined by a
// veth pair, Open MPI over TCP between them (scripts/mpirun-two-hosts.sh).
TEST(TensorParallel, TwoHostsOverTcpGiveTheSameLogits) {
  const std::string dir = testing::fixture_model("neox-sequential");
  const auto ref = testing::load_reference(dir);
  std::string ids;
  for (const auto& p : ref.prompts) ids += " --ids " + join(p);
  const std::string tmp = testing::make_temp_dir("tp-hosts");
  const std::string args = " logits --threads 1 --prefill 2 --model " + dir + ids + " --out ";
  std::string output;
  ASSERT_EQ(testing::run_command(testing::flashneox_binary() + args + tmp + "/one.safetensors", &output), 0) << output;
  // Both ranks report the address of their own namespace.
  ASSERT_EQ(testing::run_command(std::string(FLASHNEOX_SOURCE_DIR) + "/scripts/mpirun-two-hosts.sh sh -c "
                                 "'echo rank $OMPI_COMM_WORLD_RANK at $(ip -o -4 addr show | grep -o \"10.77.0.[0-9]\")'",
                                 &output),
            0)
      << "two network namespaces need root (ip netns):\n" << output;
  EXPECT_NE(output.find("rank 0 at 10.77.0.1"), std::string::npos) << output;
  EXPECT_NE(output.find("rank 1 at 10.77.0.2"), std::string::npos) << output;
  ASSERT_EQ(testing::run_command(std::string(FLASHNEOX_SOURCE_DIR) + "/scripts/mpirun-two-hosts.sh " +
                                     testing::flashneox_binary() + args + tmp + "/two.safetensors",
                                 &output),
            0)
      << output;
  const Checkpoint one = Checkpoint::from_file(tmp + "/one.safetensors");
  const Checkpoint two = Checkpoint::from_file(tmp + "/two.safetensors");
  for (const std::string& tensor : one.names())
    EXPECT_LT(testing::max_abs_diff(values(one, tensor), values(two, tensor)), 1e-4f) << tensor;
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace flashneox
