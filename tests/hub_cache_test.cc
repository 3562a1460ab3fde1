// Models and adapters by hub id, resolved offline in a fake Hugging Face
// cache made here: branches, tags, commits, and misses that say where they
// looked and what revisions there are.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/hub_cache.h"
#include "test_support.h"

namespace flashneox {
namespace {

namespace fs = std::filesystem;

const std::string kMain(40, 'a'), kStep(40, 'b'), kLoose(40, 'c');

// models--EleutherAI--pythia-tiny with refs main and step3000 and a snapshot
// no ref names; every snapshot links the bundled model's files, as the real
// cache links blobs.
std::string fake_cache() {
  const fs::path cache = testing::make_temp_dir("hub-cache");
  const fs::path repo = cache / "models--EleutherAI--pythia-tiny";
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << kMain;
  std::ofstream(repo / "refs" / "step3000") << kStep;
  for (const std::string& commit : {kMain, kStep, kLoose}) {
    fs::create_directories(repo / "snapshots" / commit);
    for (const auto& file : fs::directory_iterator(testing::bundled_model()))
      if (file.is_regular_file())
        fs::create_symlink(fs::absolute(file.path()), repo / "snapshots" / commit / file.path().filename());
  }
  return cache.string();
}

std::string error_of(const std::string& cache, const std::string& id) {
  try {
    resolve_hub_snapshot(cache, id);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(HubCache, RecognisesHubIds) {
  for (const char* id : {"EleutherAI/pythia-160m", "EleutherAI/pythia-160m@step3000", "a/b@" "0123"})
    EXPECT_TRUE(is_hub_id(id)) << id;
  for (const char* id : {"pythia", "/abs/path", "a/b/c", "../x/y", "a/..", "/a", "a/", "a/b@"})
    EXPECT_FALSE(is_hub_id(id)) << id;
}

TEST(HubCache, BranchesTagsAndCommitsResolveToSnapshots) {
  const std::string cache = fake_cache();
  const std::string repo = cache + "/models--EleutherAI--pythia-tiny";
  EXPECT_EQ(resolve_hub_snapshot(cache, "EleutherAI/pythia-tiny").dir, repo + "/snapshots/" + kMain);
  EXPECT_EQ(resolve_hub_snapshot(cache, "EleutherAI/pythia-tiny@step3000").commit, kStep);
  EXPECT_EQ(resolve_hub_snapshot(cache, "EleutherAI/pythia-tiny@" + kLoose).dir, repo + "/snapshots/" + kLoose);
}

TEST(HubCache, MissesNameWhereTheyLookedAndWhatIsThere) {
  const std::string cache = fake_cache();
  std::string e = error_of(cache, "EleutherAI/pythia-tiny@step9");
  EXPECT_NE(e.find("refs/step9"), std::string::npos) << e;
  EXPECT_NE(e.find("refs main, step3000"), std::string::npos) << e;
  EXPECT_NE(e.find(kLoose), std::string::npos) << e;
  e = error_of(cache, "EleutherAI/other");
  EXPECT_NE(e.find("models--EleutherAI--other"), std::string::npos) << e;
  EXPECT_NE(e.find("never downloads"), std::string::npos) << e;
  e = error_of(cache, "EleutherAI/pythia-tiny@" + std::string(40, 'd'));
  EXPECT_NE(e.find("is not in the local Hugging Face cache"), std::string::npos) << e;
  EXPECT_NE(error_of("", "EleutherAI/pythia-tiny").find("HF_HUB_CACHE"), std::string::npos);
}

TEST(HubCache, CommandsTakeAModelByHubId) {
  const std::string cache = fake_cache();
  const std::string generate = " generate --temperature 0 --max-new-tokens 12 --prompt ROMEO: --model ";
  std::string by_folder, by_id, error;
  ASSERT_EQ(testing::run_command(testing::flashneox_binary() + generate + testing::bundled_model(), &by_folder, false), 0);
  ASSERT_EQ(testing::run_command("HF_HUB_CACHE=" + cache + " " + testing::flashneox_binary() + generate +
                                     "EleutherAI/pythia-tiny@step3000",
                                 &by_id, false),
            0);
  EXPECT_EQ(by_id, by_folder);
  EXPECT_EQ(testing::run_command("HF_HUB_CACHE=" + cache + " " + testing::flashneox_binary() + generate +
                                     "EleutherAI/pythia-tiny@nope",
                                 &error),
            1);
  EXPECT_NE(error.find("revision 'nope'"), std::string::npos) << error;
  EXPECT_EQ(testing::run_command(testing::flashneox_binary() + generate + "no-such-folder", &error), 1);
  EXPECT_NE(error.find("no such model folder"), std::string::npos) << error;
}

}  // namespace
}  // namespace flashneox
