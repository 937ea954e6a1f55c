// `--model org/name` through the Hub: the stages download a model missing from the Hugging Face
// cache (a fake Hub on loopback: tests/tools/fake_hub_server.py), `smolvlm download` fills and
// reads the same cache, and offline starts use what is cached.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/stage_process.h"
#include "tests/tools/fake_hub.h"

namespace smolserve::testing {
namespace {

namespace fs = std::filesystem;
constexpr char kRepo[] = "smolserve-test/tiny-smolvlm2";
constexpr char kTinyDir[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";

std::string TmpDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// The fake Hub serving the tiny test model as kRepo.
std::vector<std::string> HubArgs() { return {"--repo", std::string(kRepo) + "=" + kTinyDir}; }

// Runs a command, returns {exit status, stdout}.
std::pair<int, std::string> RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>" + TmpDir() + "/cmd.err").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string ErrLog() {
  std::ifstream f(TmpDir() + "/cmd.err");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(HubModel, StagesDownloadOnFirstStartAndRunOfflineFromTheCache) {
  const std::string cache = TmpDir() + "/hf_cache";
  fs::remove_all(cache);
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_TOKEN");
  FakeHub hub(TmpDir(), HubArgs());
  ASSERT_GT(hub.port(), 0) << "fake Hub did not start";
  setenv("HF_ENDPOINT", hub.endpoint().c_str(), 1);

  // First start: the model is not cached; the vision stage downloads it, then serves.
  const std::string model = std::string("--model=") + kRepo;
  StageProcess vision("vision", "services/vision/vision_server", {model, "--threads=1"});
  ASSERT_TRUE(vision.Start(0, 120)) << vision.Log();
  EXPECT_GE(vision.CountLogLines("\"event\":\"hub_download\""), 2) << vision.Log();
  const fs::path repo_dir = fs::path(cache) / "models--smolserve-test--tiny-smolvlm2";
  ASSERT_TRUE(fs::exists(repo_dir / "refs" / "main"));
  std::string commit;
  std::ifstream(repo_dir / "refs" / "main") >> commit;
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  EXPECT_TRUE(fs::exists(snapshot / "config.json"));
  EXPECT_TRUE(fs::exists(snapshot / "model.safetensors"));
  vision.Terminate();

  // The CLI (as the chart's download Job runs it) finds the same snapshot; nothing new to fetch.
  auto [rc, out] = RunCommand(std::string("tools/smolvlm/smolvlm download ") + kRepo);
  ASSERT_EQ(rc, 0) << ErrLog();
  EXPECT_EQ(out, snapshot.string() + "\n");

  // The Hub goes away; offline starts use the cache.
  hub.Stop();
  setenv("HF_HUB_OFFLINE", "1", 1);
  StageProcess decoder("decoder", "services/decoder/decoder_server", {model, "--threads=1"});
  ASSERT_TRUE(decoder.Start(0, 120)) << decoder.Log();
  decoder.Terminate();
  std::tie(rc, out) = RunCommand(std::string("tools/smolvlm/smolvlm download ") + kRepo + "@" + commit);
  EXPECT_EQ(rc, 0) << ErrLog();
  EXPECT_EQ(out, snapshot.string() + "\n");

  // Offline and not cached: a clear refusal naming the model, not a hang.
  std::tie(rc, out) = RunCommand("tools/smolvlm/smolvlm download smolserve-test/not-cached");
  EXPECT_NE(rc, 0);
  EXPECT_NE(ErrLog().find("not-cached"), std::string::npos) << ErrLog();
  StageProcess missing("vision_missing", "services/vision/vision_server",
                       {"--model=smolserve-test/not-cached", "--threads=1"});
  EXPECT_FALSE(missing.Start(0, 20));
  EXPECT_NE(missing.Log().find("not-cached"), std::string::npos) << missing.Log();
  unsetenv("HF_HUB_OFFLINE");
}

// The chart's download Job and initContainers run each stage image's binary with
// --download_only: it fills the cache (HF_HUB_OFFLINE=0 overrides the images' 1), prints the
// snapshot folder and exits without serving.
TEST(HubModel, StageBinariesDownloadOnlyAndExit) {
  const std::string cache = TmpDir() + "/hf_cache_download_only";
  fs::remove_all(cache);
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  setenv("HF_HUB_OFFLINE", "0", 1);
  unsetenv("HF_TOKEN");
  FakeHub hub(TmpDir(), HubArgs());
  ASSERT_GT(hub.port(), 0) << "fake Hub did not start";
  setenv("HF_ENDPOINT", hub.endpoint().c_str(), 1);
  const fs::path repo_dir = fs::path(cache) / "models--smolserve-test--tiny-smolvlm2";
  std::string first;
  for (const char* binary : {"services/decoder/decoder_server", "services/preprocess/preprocess_server",
                             "services/vision/vision_server"}) {
    auto [rc, out] = RunCommand(std::string(binary) + " --download_only --model=" + kRepo);
    ASSERT_EQ(rc, 0) << binary << ": " << ErrLog();
    std::string commit;
    std::ifstream(repo_dir / "refs" / "main") >> commit;
    ASSERT_FALSE(commit.empty());
    EXPECT_EQ(out, (repo_dir / "snapshots" / commit).string() + "\n") << binary;
    EXPECT_TRUE(fs::exists(repo_dir / "snapshots" / commit / "model.safetensors"));
  }
  // A model the Hub does not have: a non-zero exit naming it.
  auto [rc, out] = RunCommand("services/decoder/decoder_server --download_only --model=smolserve-test/absent");
  EXPECT_NE(rc, 0);
  EXPECT_NE(ErrLog().find("absent"), std::string::npos) << ErrLog();
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_ENDPOINT");
}

TEST(HubModel, DownloadRefusesMalformedRepoIds) {
  for (const char* bad : {"../etc", "a/b/c", "org/name@", "-org/x"}) {
    auto [rc, out] = RunCommand(std::string("tools/smolvlm/smolvlm download '") + bad + "'");
    EXPECT_NE(rc, 0) << bad;
    EXPECT_TRUE(out.empty()) << bad;
  }
}

}  // namespace
}  // namespace smolserve::testing
