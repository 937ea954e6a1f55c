// The media cache (content and id keys, byte bound) and the media keys.
#include "services/preprocess/core/media_cache.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>

#include "gtest/gtest.h"
#include "services/preprocess/core/media_key.h"

namespace smolserve::preprocess {
namespace {

constexpr char kModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

cache::Digest D(const std::string& s) { return cache::Sha256Of(s); }

std::shared_ptr<const CachedMedia> Entry(int tiles, float value = 1.f) {
  auto e = std::make_shared<CachedMedia>();
  e->info.num_tiles = tiles;
  e->embeddings = at::full({tiles, 4, 8}, value, at::kFloat);
  return e;
}

TEST(MediaCache, StoresUnderBothKeysAndFindsByEither) {
  MediaCache cache(1 << 20);
  MediaKeys both{D("content"), D("id")};
  cache.Store(both, Entry(2));
  EXPECT_EQ(cache.stats().entries, 2);
  auto by_content = cache.Find({D("content"), std::nullopt});
  auto by_id = cache.Find({std::nullopt, D("id")});
  ASSERT_NE(by_content, nullptr);
  EXPECT_EQ(by_content, by_id);
  EXPECT_EQ(cache.Find({D("other"), std::nullopt}), nullptr);
  EXPECT_EQ(cache.Find({}), nullptr);
  // Content wins over the id: an id reused for other media still finds the content's entry.
  cache.Store({D("content2"), std::nullopt}, Entry(3));
  auto hit = cache.Find({D("content2"), D("id")});
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->info.num_tiles, 3);
  // ... and the id now names that media.
  EXPECT_EQ(cache.Find({std::nullopt, D("id")})->info.num_tiles, 3);
}

// Probe finding: new bytes sent under a known id were answered with the id's old media.
TEST(MediaCache, NewContentUnderAKnownIdIsNotAnsweredWithTheOldMedia) {
  MediaCache cache(1 << 20);
  cache.Store({D("old content"), D("id")}, Entry(2));
  EXPECT_EQ(cache.Find({D("new content"), D("id")}), nullptr);
  // Once the new content is stored with the id, the id names it.
  cache.Store({D("new content"), D("id")}, Entry(5));
  EXPECT_EQ(cache.Find({std::nullopt, D("id")})->info.num_tiles, 5);
}

TEST(MediaCache, AContentHitBindsANewId) {
  MediaCache cache(1 << 20);
  cache.Store({D("content"), std::nullopt}, Entry(2));
  EXPECT_EQ(cache.Find({std::nullopt, D("late id")}), nullptr);
  ASSERT_NE(cache.Find({D("content"), D("late id")}), nullptr);
  EXPECT_NE(cache.Find({std::nullopt, D("late id")}), nullptr);
}

TEST(MediaCache, IsBoundedInBytesAndEvictsTheLeastRecentlyUsed) {
  const int64_t one = Entry(1)->bytes();
  EXPECT_GT(one, 4 * 8 * 4);  // the embeddings plus the metadata
  MediaCache cache(3 * one);
  cache.Store({D("a"), std::nullopt}, Entry(1));
  cache.Store({D("b"), std::nullopt}, Entry(1));
  cache.Store({D("c"), std::nullopt}, Entry(1));
  ASSERT_NE(cache.Find({D("a"), std::nullopt}), nullptr);  // a is now the most recent
  cache.Store({D("d"), std::nullopt}, Entry(1));           // evicts b
  EXPECT_EQ(cache.Find({D("b"), std::nullopt}), nullptr);
  EXPECT_NE(cache.Find({D("a"), std::nullopt}), nullptr);
  EXPECT_NE(cache.Find({D("c"), std::nullopt}), nullptr);
  EXPECT_NE(cache.Find({D("d"), std::nullopt}), nullptr);
  EXPECT_LE(cache.stats().bytes, 3 * one);
  // An entry larger than the whole budget is not stored.
  cache.Store({D("big"), std::nullopt}, Entry(100));
  EXPECT_EQ(cache.Find({D("big"), std::nullopt}), nullptr);
}

TEST(MediaCache, ATinyOrZeroBoundNeverStores) {
  for (int64_t bound : {int64_t{0}, int64_t{1}}) {
    MediaCache cache(bound);
    cache.Store({D("a"), D("id")}, Entry(1));
    EXPECT_EQ(cache.Find({D("a"), D("id")}), nullptr);
    EXPECT_EQ(cache.stats().entries, 0);
    EXPECT_EQ(cache.stats().bytes, 0);
  }
}

TEST(MediaCache, WhenOnlyOneKeyFitsTheContentKeyIsKept) {
  const int64_t one = Entry(1)->bytes();
  MediaCache cache(one + one / 2);
  cache.Store({D("content"), D("id")}, Entry(1));
  EXPECT_NE(cache.Find({D("content"), std::nullopt}), nullptr);
}

TEST(MediaKey, IdsAndContentLiveInSeparateNamespaces) {
  const cache::Digest model = D("model");
  const std::string opts = KeyOptions().Add("x", 1).bytes();
  EXPECT_NE(MediaContentKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"),
            MediaIdKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"));
  EXPECT_NE(MediaIdKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"),
            MediaIdKey(model, "t", MediaInfo::Kind::kVideo, opts, "abc"));
  EXPECT_NE(MediaIdKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"),
            MediaIdKey(D("model2"), "t", MediaInfo::Kind::kImage, opts, "abc"));
  EXPECT_NE(MediaIdKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"),
            MediaIdKey(model, "t", MediaInfo::Kind::kImage, KeyOptions().Add("x", 2).bytes(), "abc"));
  EXPECT_EQ(MediaContentKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"),
            MediaContentKey(model, "t", MediaInfo::Kind::kImage, opts, "abc"));
}

TEST(MediaKey, TenantsNeverShareKeys) {
  const cache::Digest model = D("model");
  const std::string opts = KeyOptions().Add("x", 1).bytes();
  EXPECT_NE(MediaIdKey(model, "a", MediaInfo::Kind::kImage, opts, "cat"),
            MediaIdKey(model, "b", MediaInfo::Kind::kImage, opts, "cat"));
  EXPECT_NE(MediaContentKey(model, "a", MediaInfo::Kind::kImage, opts, "bytes"),
            MediaContentKey(model, "b", MediaInfo::Kind::kImage, opts, "bytes"));
  EXPECT_NE(MediaContentKey(model, "", MediaInfo::Kind::kImage, opts, "bytes"),
            MediaContentKey(model, "a", MediaInfo::Kind::kImage, opts, "bytes"));
}

TEST(MediaKey, KeyOptionsAreTypedAndExact) {
  EXPECT_NE(KeyOptions().Add("fps", 1.0).bytes(), KeyOptions().Add("fps", 1.0000001).bytes());
  EXPECT_NE(KeyOptions().Add("fps", 1.0).bytes(), KeyOptions().Add("fps", 1).bytes());
  EXPECT_NE(KeyOptions().Add("a", 1).Add("b", 2).bytes(), KeyOptions().Add("a", 2).Add("b", 1).bytes());
}

TEST(MediaKey, ModelIdentityFollowsTheConfigFiles) {
  auto a = ModelIdentity(kModel);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, *ModelIdentity(kModel));
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/model_identity";
  mkdir(dir.c_str(), 0755);
  for (const char* f : {"config.json", "preprocessor_config.json", "processor_config.json"}) {
    std::ifstream in(std::string(kModel) + "/" + f, std::ios::binary);
    std::ofstream(dir + "/" + f, std::ios::binary) << in.rdbuf();
  }
  EXPECT_EQ(*a, *ModelIdentity(dir));
  std::ofstream(dir + "/config.json", std::ios::app) << "\n";
  EXPECT_NE(*a, *ModelIdentity(dir));
}

}  // namespace
}  // namespace smolserve::preprocess
