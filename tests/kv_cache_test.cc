#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "cache/block_manager.h"
#include "cache/kv_cache.h"
#include "core/error.h"
#include "core/large_buffer.h"
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

// Prefix caching: whole computed blocks are shared, reference-counted, kept
// after release and evicted oldest first only when nothing else is free.
TEST(BlockManager, SharesPublishedWholeBlocksOnly) {
  BlockManager m(8, 4, /*prefix_caching=*/true);
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<int32_t> a;
  PrefixKeys ka;
  EXPECT_EQ(m.share_prefix(a, tokens, 9, ka), 0);  // nothing cached yet
  ASSERT_TRUE(m.reserve(a, 10));
  EXPECT_EQ(a.size(), 3u);
  m.publish(a, tokens, 10, ka);  // blocks 0 and 1 are whole; the third holds 2 of 4 tokens
  EXPECT_EQ(ka.published, 2);

  std::vector<int32_t> b;
  PrefixKeys kb;
  EXPECT_EQ(m.share_prefix(b, tokens, 9, kb), 8);
  EXPECT_EQ(b, std::vector<int32_t>(a.begin(), a.begin() + 2));
  EXPECT_EQ(m.used_blocks(), 3);  // shared, not copied

  // A limit inside the second block shares only the first; another adapter nothing.
  std::vector<int32_t> c, d;
  PrefixKeys kc, kd;
  kd.salt = 7;
  EXPECT_EQ(m.share_prefix(c, tokens, 7, kc), 4);
  EXPECT_EQ(m.share_prefix(d, tokens, 9, kd), 0);
  // A different token in block 1 stops the match there.
  std::vector<int32_t> other = tokens;
  other[5] = 99;
  std::vector<int32_t> e;
  PrefixKeys ke;
  EXPECT_EQ(m.share_prefix(e, other, 9, ke), 4);

  m.release(a);
  EXPECT_EQ(m.used_blocks(), 2);  // b and c, e still hold blocks 0 and 1
  for (auto* t : {&b, &c, &e}) m.release(*t);
  EXPECT_EQ(m.used_blocks(), 0);
  EXPECT_EQ(m.cached_blocks(), 2);
  EXPECT_EQ(m.free_blocks(), 8);
  EXPECT_THROW(m.release(a = {0}), Error);  // a block nobody holds
}

TEST(BlockManager, EvictsTheLeastRecentlyReleasedAndNeverAHeldBlock) {
  BlockManager m(4, 2, /*prefix_caching=*/true);
  const std::vector<int32_t> first = {1, 2, 3, 4, 5}, second = {6, 7, 8, 9, 10};
  std::vector<int32_t> a, b;
  PrefixKeys ka, kb;
  ASSERT_TRUE(m.reserve(a, 4));
  m.publish(a, first, 4, ka);
  ASSERT_TRUE(m.reserve(b, 4));
  m.publish(b, second, 4, kb);
  m.release(a);  // released first: evicted first, its last block before its first
  m.release(b);
  EXPECT_EQ(m.cached_blocks(), 4);

  std::vector<int32_t> held;
  PrefixKeys kh;
  EXPECT_EQ(m.share_prefix(held, second, 4, kh), 4);  // the second prompt is in use again
  std::vector<int32_t> fresh;
  EXPECT_TRUE(m.reserve(fresh, 4));   // takes the two blocks of `first`
  EXPECT_FALSE(m.reserve(fresh, 6));  // the held blocks are not for taking
  std::vector<int32_t> again;
  PrefixKeys k1, k2;  // keys belong to one token sequence
  EXPECT_EQ(m.share_prefix(again, first, 4, k1), 0);   // forgotten
  EXPECT_EQ(m.share_prefix(again, second, 4, k2), 4);  // still there
  for (auto* t : {&held, &fresh, &again}) m.release(*t);
  EXPECT_EQ(m.free_blocks(), 4);
}

TEST(BlockManager, WithoutPrefixCachingNothingIsShared) {
  BlockManager m(4, 2);
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5};
  std::vector<int32_t> a, b;
  PrefixKeys ka, kb;
  ASSERT_TRUE(m.reserve(a, 5));
  m.publish(a, tokens, 5, ka);
  m.release(a);
  EXPECT_EQ(m.share_prefix(b, tokens, 5, kb), 0);
  EXPECT_EQ(m.cached_blocks(), 0);
  EXPECT_EQ(m.free_blocks(), 4);
}

// The smaps entry of the mapping that holds `p`: its "THPeligible" flag, or
// -1 when the kernel does not report one.
int huge_page_eligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= at && at < end;
      continue;
    }
    if (inside && line.rfind("THPeligible:", 0) == 0) return std::stoi(line.substr(12));
  }
  return -1;
}

TEST(LargeBuffer, ZeroedAlignedAndMarkedForHugePages) {
  const size_t bytes = 5 * LargeBuffer::kHugePage + 100;
  LargeBuffer buffer(bytes, "a test");
  ASSERT_NE(buffer.data(), nullptr);
  EXPECT_EQ(buffer.size(), bytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.data()) % LargeBuffer::kHugePage, 0u);
  const auto* bytes_at = static_cast<const unsigned char*>(buffer.data());
  for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(bytes_at[i], 0) << i;
  EXPECT_EQ(bytes_at[bytes - 1], 0);
  static_cast<unsigned char*>(buffer.data())[bytes - 1] = 7;  // writable to its last byte
  // Where the system honours the advice (a mapping of the test's own, so
  // advised, is eligible: not so with huge pages "never", nor under qemu-user,
  // which ignores madvise), the buffer must be eligible too.
  const size_t control_bytes = 4 * LargeBuffer::kHugePage;
  void* control = ::mmap(nullptr, control_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(control, MAP_FAILED);
  ::madvise(control, control_bytes, MADV_HUGEPAGE);
  const int control_eligible = huge_page_eligible(static_cast<char*>(control) + LargeBuffer::kHugePage);
  ::munmap(control, control_bytes);
  if (control_eligible == 1) {
    EXPECT_EQ(huge_page_eligible(buffer.data()), 1);
  }

  LargeBuffer moved = std::move(buffer);
  EXPECT_EQ(buffer.data(), nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(moved.data())[bytes - 1], 7);
  LargeBuffer small(1000, "a test");  // below a huge page: page-aligned, still zeroed
  EXPECT_EQ(static_cast<unsigned char*>(small.data())[999], 0);
  moved = std::move(small);
  EXPECT_EQ(moved.size(), 1000u);
  EXPECT_EQ(LargeBuffer(0, "a test").data(), nullptr);
}

TEST(LargeBuffer, ImpossibleSizeIsAClearError) {
  try {
    LargeBuffer buffer(size_t{1} << 60, "a test");
    FAIL() << "allocated 2^60 bytes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot allocate 1152921504606846976 bytes for a test"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flashneox
