#include <gtest/gtest.h>

#include "cache/kv_cache.h"
#include "core/error.h"
#include "model/sequence_batch.h"

namespace flashneox {
namespace {

TEST(BlockAllocator, AllocatesAndReturnsEveryBlock) {
  BlockAllocator alloc(8);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(alloc.allocate(5, a));
  EXPECT_EQ(alloc.free_count(), 3);
  EXPECT_FALSE(alloc.allocate(4, b));  // all or nothing
  EXPECT_TRUE(b.empty());
  ASSERT_TRUE(alloc.allocate(3, b));
  EXPECT_EQ(alloc.free_count(), 0);
  alloc.release(a);
  alloc.release(b);
  EXPECT_EQ(alloc.free_count(), 8);
  EXPECT_THROW(alloc.release(a), Error);  // double free is caught
}

TEST(SequenceBatch, SlotsFollowTheBlockTable) {
  std::vector<int32_t> blocks = {5, 2};
  std::vector<int32_t> ids = {10, 11, 12};
  const ForwardBatch b = make_batch({{ids.data(), 3, 3, &blocks, true}}, 4, true);
  ASSERT_EQ(b.slots.size(), 3u);
  EXPECT_EQ(b.slots[0], 5 * 4 + 3);  // position 3 → block 0 (id 5), offset 3
  EXPECT_EQ(b.slots[1], 2 * 4 + 0);  // position 4 → block 1 (id 2), offset 0
  EXPECT_EQ(b.position_ids[2], 5);
  EXPECT_EQ(b.lm_head_indices.size(), 3u);
  EXPECT_THROW(make_batch({{ids.data(), 3, 6, &blocks, true}}, 4, true), Error);
}

}  // namespace
}  // namespace flashneox
