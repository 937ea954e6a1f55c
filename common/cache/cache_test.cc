#include <string>
#include <thread>
#include <vector>

#include "common/cache/lru_cache.h"
#include "common/cache/sha256.h"
#include "gtest/gtest.h"

namespace smolserve::cache {
namespace {

TEST(Sha256Test, KnownVectors) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(DigestHex(Sha256Of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(DigestHex(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("ab").Update("c");
  EXPECT_EQ(h.Final(), Sha256Of("abc"));
}

TEST(Sha256Test, FieldsAreDelimited) {
  Sha256 a, b;
  a.UpdateField("ab").UpdateField("c");
  b.UpdateField("a").UpdateField("bc");
  EXPECT_NE(a.Final(), b.Final());
}

Digest Key(int i) { return Sha256Of(std::to_string(i)); }

TEST(LruCacheTest, HitMissAndRecency) {
  LruCache<std::string> c(30);
  EXPECT_EQ(c.Get(Key(1)), nullptr);
  c.Put(Key(1), std::make_shared<std::string>("one"), 10);
  c.Put(Key(2), std::make_shared<std::string>("two"), 10);
  c.Put(Key(3), std::make_shared<std::string>("three"), 10);
  ASSERT_NE(c.Get(Key(1)), nullptr);  // 1 becomes most recent; 2 is now the oldest
  c.Put(Key(4), std::make_shared<std::string>("four"), 10);
  EXPECT_EQ(c.Get(Key(2)), nullptr);
  EXPECT_EQ(*c.Get(Key(1)), "one");
  EXPECT_EQ(*c.Get(Key(3)), "three");
  EXPECT_EQ(*c.Get(Key(4)), "four");
  const CacheStats s = c.stats();
  EXPECT_EQ(s.bytes, 30);
  EXPECT_EQ(s.entries, 3);
  EXPECT_EQ(s.evictions, 1);
  EXPECT_EQ(s.hits, 4);
  EXPECT_EQ(s.misses, 2);
}

TEST(LruCacheTest, NeverExceedsItsByteBound) {
  LruCache<int> c(1000);
  for (int i = 0; i < 500; ++i) {
    c.Put(Key(i), std::make_shared<int>(i), 1 + (i * 37) % 300);
    ASSERT_LE(c.stats().bytes, 1000);
  }
  c.Put(Key(-1), std::make_shared<int>(0), 1001);  // larger than the budget
  EXPECT_EQ(c.Get(Key(-1)), nullptr);
  EXPECT_EQ(c.stats().rejected, 1);
  LruCache<int> off(0);
  off.Put(Key(1), std::make_shared<int>(1), 1);
  EXPECT_EQ(off.Get(Key(1)), nullptr);
}

TEST(LruCacheTest, ReplaceKeepsAccounting) {
  LruCache<int> c(100);
  c.Put(Key(1), std::make_shared<int>(1), 60);
  c.Put(Key(1), std::make_shared<int>(2), 40);
  EXPECT_EQ(c.stats().bytes, 40);
  EXPECT_EQ(*c.Get(Key(1)), 2);
}

TEST(LruCacheTest, EvictedValueStaysValidForHolder) {
  LruCache<std::string> c(10);
  c.Put(Key(1), std::make_shared<std::string>("held"), 10);
  auto held = c.Get(Key(1));
  c.Put(Key(2), std::make_shared<std::string>("new"), 10);
  EXPECT_EQ(c.Get(Key(1)), nullptr);
  EXPECT_EQ(*held, "held");
}

TEST(LruCacheTest, ConcurrentUse) {
  LruCache<int> c(64 * 8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 2000; ++i) {
        const int k = (i * 7 + t) % 200;
        if (auto v = c.Get(Key(k))) {
          ASSERT_EQ(*v, k);
        } else {
          c.Put(Key(k), std::make_shared<int>(k), 8);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(c.stats().bytes, 64 * 8);
}

}  // namespace
}  // namespace smolserve::cache
