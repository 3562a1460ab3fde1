// The thread pool: every item exactly once for any size, grain and thread
// count; exceptions reach the caller; nested and concurrent calls work.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/parallel.h"

namespace flashneox {
namespace {

class Threads : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { set_num_threads(GetParam()); }
  void TearDown() override { set_num_threads(0); }
};

TEST_P(Threads, EveryItemExactlyOnce) {
  for (int64_t count : {1, 2, 3, 7, 64, 1000, 100003})
    for (int64_t grain : {0, 1, 5, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
      parallel_for(count, grain, [&](int64_t begin, int64_t end) {
        ASSERT_LE(0, begin);
        ASSERT_LT(begin, end);
        ASSERT_LE(end, count);
        for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < count; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << count << " " << grain;
    }
}

TEST_P(Threads, AnExceptionReachesTheCallerAndThePoolGoesOn) {
  EXPECT_THROW(parallel_for(1000, 1,
                            [](int64_t begin, int64_t end) {
                              for (int64_t i = begin; i < end; ++i)
                                if (i == 777) throw std::runtime_error("item 777");
                            }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  parallel_for(1000, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 999 * 1000 / 2);
}

TEST_P(Threads, NestedAndConcurrentCallsWork) {
  std::atomic<int64_t> inner{0};
  parallel_for(16, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      parallel_for(100, 1, [&](int64_t b, int64_t e) { inner += e - b; });  // runs on the calling thread
  });
  EXPECT_EQ(inner.load(), 1600);

  std::atomic<int64_t> a{0}, b{0};
  auto many = [](std::atomic<int64_t>& total) {
    for (int round = 0; round < 200; ++round)
      parallel_for(257, 1, [&](int64_t begin, int64_t end) { total += end - begin; });
  };
  std::thread other(many, std::ref(a));
  many(b);
  other.join();
  EXPECT_EQ(a.load(), 200 * 257);
  EXPECT_EQ(b.load(), 200 * 257);
}

INSTANTIATE_TEST_SUITE_P(Pool, Threads, ::testing::Values(1, 2, 3, 8));

// A worker that keeps stalling jobs (as one whose core another process holds
// does) is left out for a while: calls then run on the caller alone.
TEST(Pool, TheCallerGoesAloneWhileAWorkerStallsJobs) {
  set_num_threads(2);
  const auto caller = std::this_thread::get_id();
  int calls_alone = 0;
  for (int call = 0; call < 40; ++call) {
    std::atomic<bool> helped{false};
    parallel_for(8, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() == caller) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      } else {
        helped = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // descheduled mid-chunk
      }
    });
    calls_alone += !helped;
  }
  EXPECT_GE(calls_alone, 20);
  set_num_threads(0);
}

TEST(Pool, ThreadCountFollowsTheSetting) {
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  set_num_threads(0);
  EXPECT_GE(num_threads(), 1);
}

}  // namespace
}  // namespace flashneox
