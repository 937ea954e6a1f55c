// Preprocessing with media supplied by a lookup (a media cache): a request whose media come
// from the cache gives the same prompts and ids as one decoded from bytes, only the decoded
// items have pixel arrays, and the keys follow content, id, kind and processor options.
#include <fstream>
#include <map>
#include <sstream>

#include <ATen/ATen.h>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/preprocess/core/preprocessor.h"

namespace smolserve::preprocess {
namespace {

using nlohmann::json;
constexpr char kModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class PreprocessorCache : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PreprocessorOptions options;
    options.model_dir = kModel;
    options.media_access.base_dir = "tests/golden";
    auto p = Preprocessor::Create(options);
    ASSERT_TRUE(p.ok()) << p.status();
    preprocessor_ = p->release();
  }
  static void TearDownTestSuite() {
    delete preprocessor_;
    preprocessor_ = nullptr;
  }

  static PrepareRequest Parse(const json& j) {
    auto r = ParsePrepareRequest(j.dump());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : PrepareRequest();
  }

  static absl::StatusOr<PreparedBatch> Run(const json& j, const MediaLookup& lookup = {}) {
    return preprocessor_->Prepare(Parse(j), preprocessor_->options().media_access, lookup);
  }

  static Preprocessor* preprocessor_;
};
Preprocessor* PreprocessorCache::preprocessor_ = nullptr;

// A map-backed lookup: `Record` remembers every item's MediaInfo under its keys; `Find`
// answers from what was remembered.
struct FakeCache {
  std::map<std::string, MediaInfo> by_key;
  std::vector<MediaKeys> seen;  // keys of every lookup, in order
  std::vector<int> indices;

  MediaLookup Lookup(bool answer) {
    return [this, answer](int index, const MediaKeys& keys) -> std::optional<MediaInfo> {
      seen.push_back(keys);
      indices.push_back(index);
      if (!answer) return std::nullopt;
      if (keys.content) {
        auto it = by_key.find(cache::DigestHex(*keys.content));
        if (it != by_key.end()) return it->second;
      }
      if (keys.id) {
        auto it = by_key.find(cache::DigestHex(*keys.id));
        if (it != by_key.end()) return it->second;
      }
      return std::nullopt;
    };
  }
  void Record(const PreparedBatch& batch, const std::function<bool(const MediaInfo&)>& which =
                                             [](const MediaInfo&) { return true; }) {
    for (const MediaInfo& m : batch.media) {
      if (!which(m)) continue;
      if (m.keys.content) by_key[cache::DigestHex(*m.keys.content)] = m;
      if (m.keys.id) by_key[cache::DigestHex(*m.keys.id)] = m;
    }
  }
};

json Item(const std::string& type, const std::string& path, const std::string& id = "") {
  json j = {{"type", type}};
  if (!path.empty()) j["path"] = path;
  if (!id.empty()) j["id"] = id;
  return j;
}

json OneConversation(std::vector<json> items, const std::string& text = "What is it?") {
  items.push_back({{"type", "text"}, {"text", text}});
  return {{"messages", {{{"role", "user"}, {"content", items}}}}};
}

// The prompt side of two batches is identical.
void ExpectSamePrompts(const PreparedBatch& a, const PreparedBatch& b) {
  EXPECT_EQ(a.prompt_template, b.prompt_template);
  EXPECT_EQ(a.prompt_expanded, b.prompt_expanded);
  EXPECT_EQ(a.input_ids, b.input_ids);
  EXPECT_EQ(a.attention_mask, b.attention_mask);
  ASSERT_EQ(a.media.size(), b.media.size());
  for (size_t i = 0; i < a.media.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a.media[i].kind, b.media[i].kind);
    EXPECT_EQ(a.media[i].conversation, b.media[i].conversation);
    EXPECT_EQ(a.media[i].num_tiles, b.media[i].num_tiles);
    EXPECT_EQ(a.media[i].rows, b.media[i].rows);
    EXPECT_EQ(a.media[i].cols, b.media[i].cols);
    EXPECT_EQ(a.media[i].timestamps, b.media[i].timestamps);
    EXPECT_EQ(a.media[i].duration_int, b.media[i].duration_int);
  }
}

const json kImageAndVideo = [] {
  json r = OneConversation({Item("image", "media/fruits.jpg"), Item("video", "media/tree.avi")});
  r["processor"] = {{"size", {{"longest_edge", 1024}}}, {"video", {{"num_frames", 4}}}};
  return r;
}();

TEST_F(PreprocessorCache, MediaFromTheCacheGiveTheSamePromptAndIdsAsFromBytes) {
  auto plain = Run(kImageAndVideo);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(plain->pixels.defined());

  // First pass: the lookup knows nothing; the result is that of a plain Prepare, plus keys.
  FakeCache cache;
  auto first = Run(kImageAndVideo, cache.Lookup(true));
  ASSERT_TRUE(first.ok()) << first.status();
  ExpectSamePrompts(*plain, *first);
  EXPECT_TRUE(at::equal(plain->pixel_values(), first->pixel_values()));
  EXPECT_TRUE(at::equal(plain->pixel_attention_mask, first->pixel_attention_mask));
  ASSERT_EQ(first->media.size(), 2u);
  EXPECT_EQ(cache.indices, (std::vector<int>{0, 1}));
  for (const MediaInfo& m : first->media) {
    EXPECT_FALSE(m.from_cache);
    EXPECT_TRUE(m.keys.content.has_value());
    EXPECT_FALSE(m.keys.id.has_value());
  }
  EXPECT_EQ(first->num_cached_tiles(), 0);
  EXPECT_FALSE(plain->media[0].keys.content.has_value());  // no lookup: no hashing

  // Second pass: both items come from the cache, nothing is decoded.
  cache.Record(*first);
  auto second = Run(kImageAndVideo, cache.Lookup(true));
  ASSERT_TRUE(second.ok()) << second.status();
  ExpectSamePrompts(*plain, *second);
  EXPECT_FALSE(second->pixels.defined());
  EXPECT_FALSE(second->pixel_attention_mask.defined());
  for (const MediaInfo& m : second->media) {
    EXPECT_TRUE(m.from_cache);
    EXPECT_EQ(m.first_tile, -1);
  }
  EXPECT_EQ(second->num_real_tiles(), plain->num_real_tiles());
  EXPECT_EQ(second->num_cached_tiles(), plain->num_real_tiles());
  EXPECT_GT(plain->media[1].num_tiles, 1);  // the video has several frames
}

TEST_F(PreprocessorCache, MixedCachedAndDecodedItemsKeepTheirOrder) {
  // Conversation 0: image A, video, image B; conversation 1: image B. Only the video is
  // cached, so the pixel rows hold A, B | B.
  json req = {{"conversations",
               {{{{"role", "user"},
                  {"content",
                   {Item("image", "media/fruits.jpg"), Item("video", "media/tree.avi"),
                    Item("image", "media/baboon.jpg"), {{"type", "text"}, {"text", "Compare."}}}}}},
                {{{"role", "user"},
                  {"content", {Item("image", "media/baboon.jpg"), {{"type", "text"}, {"text", "And?"}}}}}}}},
              {"processor", {{"size", {{"longest_edge", 1024}}}, {"video", {{"num_frames", 4}}}}}};
  FakeCache cache;
  auto fresh = Run(req, cache.Lookup(false));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_EQ(fresh->media.size(), 4u);
  cache.Record(*fresh, [](const MediaInfo& m) { return m.kind == MediaInfo::Kind::kVideo; });
  auto mixed = Run(req, cache.Lookup(true));
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  ExpectSamePrompts(*fresh, *mixed);

  const MediaInfo& a = mixed->media[0];
  const MediaInfo& video = mixed->media[1];
  const MediaInfo& b0 = mixed->media[2];
  const MediaInfo& b1 = mixed->media[3];
  EXPECT_FALSE(a.from_cache);
  EXPECT_TRUE(video.from_cache);
  EXPECT_FALSE(b0.from_cache);
  EXPECT_FALSE(b1.from_cache);
  EXPECT_EQ(mixed->num_cached_tiles(), video.num_tiles);
  // Image B's key is the same in both conversations (same bytes, same options).
  EXPECT_EQ(b0.keys.content, b1.keys.content);
  EXPECT_NE(a.keys.content, b0.keys.content);

  // Pixel rows: the decoded items' arrays, packed in prompt order.
  EXPECT_EQ(a.first_tile, 0);
  EXPECT_EQ(b0.first_tile, a.num_tiles);
  EXPECT_EQ(b1.first_tile, 0);
  ASSERT_TRUE(mixed->pixels.defined());
  EXPECT_EQ(mixed->pixel_values().size(1), a.num_tiles + b0.num_tiles);
  const at::Tensor pv = fresh->pixel_values();
  const at::Tensor mv = mixed->pixel_values();
  EXPECT_TRUE(at::equal(mv[0].narrow(0, 0, a.num_tiles), pv[0].narrow(0, 0, a.num_tiles)));
  EXPECT_TRUE(at::equal(mv[0].narrow(0, b0.first_tile, b0.num_tiles),
                        pv[0].narrow(0, fresh->media[2].first_tile, b0.num_tiles)));
  EXPECT_TRUE(at::equal(mv[1].narrow(0, 0, b1.num_tiles), pv[1].narrow(0, 0, b1.num_tiles)));
  EXPECT_EQ(mixed->pixel_attention_mask.sum().item<int64_t>(),
            static_cast<int64_t>(a.num_tiles + b0.num_tiles + b1.num_tiles) * 512 * 512);
}

TEST_F(PreprocessorCache, AnIdAloneResolvesWhatWasSentWithIt) {
  FakeCache cache;
  auto sent = Run(OneConversation({Item("image", "media/fruits.jpg", "fruit")}), cache.Lookup(true));
  ASSERT_TRUE(sent.ok()) << sent.status();
  const MediaKeys keys = sent->media[0].keys;
  ASSERT_TRUE(keys.content && keys.id);
  EXPECT_NE(*keys.content, *keys.id);
  cache.Record(*sent);

  auto by_id = Run(OneConversation({Item("image", "", "fruit")}), cache.Lookup(true));
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_FALSE(cache.seen.back().content.has_value());
  EXPECT_EQ(cache.seen.back().id, keys.id);
  ExpectSamePrompts(*sent, *by_id);
  EXPECT_TRUE(by_id->media[0].from_cache);

  // The same id as a video, or with other options, is another key.
  json other = OneConversation({Item("image", "", "fruit")});
  other["processor"] = {{"do_image_splitting", false}};
  auto miss = Run(other, cache.Lookup(true));
  EXPECT_EQ(miss.status().code(), absl::StatusCode::kNotFound) << miss.status();
  auto video = Run(OneConversation({Item("video", "", "fruit")}), cache.Lookup(true));
  EXPECT_EQ(video.status().code(), absl::StatusCode::kNotFound) << video.status();
}

TEST_F(PreprocessorCache, AnUnknownIdAloneIsNotFoundNamingTheItem) {
  FakeCache cache;
  for (const MediaLookup& lookup : {cache.Lookup(true), MediaLookup()}) {
    auto r = Run(OneConversation({Item("image", "media/fruits.jpg"), Item("image", "", "nope")}),
                 lookup);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
    EXPECT_NE(r.status().message().find("image 1 (id 'nope')"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("media id 'nope' is not cached; send the media data"),
              std::string::npos)
        << r.status();
  }
}

TEST_F(PreprocessorCache, ContentKeysFollowTheBytesTheKindAndTheOptions) {
  FakeCache cache;
  auto key_of = [&](const json& req) -> std::optional<cache::Digest> {
    const size_t before = cache.seen.size();
    auto r = Run(req, cache.Lookup(false));
    EXPECT_TRUE(r.ok()) << r.status();
    if (cache.seen.size() != before + 1) return std::nullopt;
    return cache.seen.back().content;
  };
  const std::string jpeg = ReadFile("tests/golden/media/fruits.jpg");
  const auto by_path = key_of(OneConversation({Item("image", "media/fruits.jpg")}));
  ASSERT_TRUE(by_path.has_value());
  // The same bytes sent otherwise, or with another text, have the same key.
  EXPECT_EQ(by_path, key_of(OneConversation({{{"type", "image"}, {"base64", absl::Base64Escape(jpeg)}}},
                                            "Another question")));
  // Other bytes, or options that change preprocessing, do not.
  EXPECT_NE(by_path, key_of(OneConversation({Item("image", "media/baboon.jpg")})));
  for (const json& options :
       {json{{"do_image_splitting", false}}, json{{"size", {{"longest_edge", 1024}}}},
        json{{"image_mode", "keep"}}}) {
    json req = OneConversation({Item("image", "media/fruits.jpg")});
    req["processor"] = options;
    EXPECT_NE(by_path, key_of(req)) << options;
  }
  // Video options change video keys only.
  json video = OneConversation({Item("video", "media/tree.avi")});
  video["processor"] = {{"video", {{"num_frames", 4}}}};
  const auto v4 = key_of(video);
  video["processor"]["video"]["num_frames"] = 3;
  EXPECT_NE(v4, key_of(video));
  video["processor"]["video"]["num_frames"] = 4;
  video["processor"]["do_image_splitting"] = false;
  EXPECT_EQ(v4, key_of(video));
}

TEST_F(PreprocessorCache, AnInconsistentCachedItemIsAnInternalError) {
  FakeCache cache;
  auto r = Run(OneConversation({Item("image", "media/fruits.jpg")}),
               [](int, const MediaKeys&) -> std::optional<MediaInfo> {
                 MediaInfo bad;
                 bad.rows = 2;
                 bad.cols = 2;
                 bad.num_tiles = 3;  // a 2 x 2 grid has 5
                 return bad;
               });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  EXPECT_NE(r.status().message().find("image 0"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace smolserve::preprocess
