// DownloadModel / ResolveOrDownloadModel against a real fake Hub: tests/tools/fake_hub_server.py,
// run as a child process (python3) for each test, on 127.0.0.1 only. The server logs every
// request (JSON lines) before answering, so the tests can count what crossed the wire.
#include "common/hub/hub_download.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hub/hub_client.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/tools/fake_hub.h"

namespace smolserve::hub {
namespace {

using ::absl::StatusCode;
using ::smolserve::testing::FakeHub;
using ::smolserve::testing::Runfile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRepo[] = "org/model";
constexpr char kRepoFolder[] = "models--org--model";

std::string TmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

// A file in the runfiles tree (the test's working directory).
std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string ReadLink(const std::string& path) {
  char buf[4096];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, n);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// The fake Hub as a child process.
class HubDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir_template = TmpDir() + "/hub_download_XXXXXX";
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    root_ = dir_template;
    cache_ = root_ + "/cache";
    setenv("HF_HUB_CACHE", cache_.c_str(), 1);
    setenv("HF_TOKEN_PATH", (root_ + "/no_token_file").c_str(), 1);
    for (const char* v : {"HF_HOME", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"}) unsetenv(v);
    // A repo with what a model needs, plus files DownloadModel must leave alone.
    repo_dir_ = MakeRepo("repo_main", {{"config.json", R"({"model_type": "smolvlm"})"},
                                       {"tokenizer.json", R"({"version": "1.0"})"},
                                       {"chat_template.jinja", "{{ messages }}"},
                                       {"model.safetensors", RandomBytes(kWeightBytes, 1)},
                                       {"README.md", "# not needed\n"},
                                       {"pytorch_model.bin", "not needed"}});
  }

  void TearDown() override {
    hub_.reset();
    for (const char* v : {"HF_HUB_CACHE", "HF_TOKEN_PATH", "HF_TOKEN", "HF_HUB_OFFLINE",
                          "HF_ENDPOINT"}) {
      unsetenv(v);
    }
  }

  std::string MakeRepo(const std::string& name,
                       const std::map<std::string, std::string>& files) {
    const std::string dir = root_ + "/" + name;
    mkdir(dir.c_str(), 0755);
    for (const auto& [file, bytes] : files) WriteAll(dir + "/" + file, bytes);
    return dir;
  }

  void StartHub(std::vector<std::string> args) {
    hub_ = std::make_unique<FakeHub>(root_, args);
  }
  void StartHub() { StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_}); }

  DownloadOptions Options(const std::string& revision = "main") const {
    DownloadOptions o;
    o.repo_id = kRepo;
    o.revision = revision;
    o.endpoint = hub_ ? hub_->endpoint() : "http://127.0.0.1:1";
    o.timeout = absl::Seconds(60);
    o.max_attempts = 3;
    o.initial_backoff = absl::Milliseconds(20);
    o.progress = ProgressMode::kNone;
    return o;
  }

  std::string RepoDir() const { return cache_ + "/" + kRepoFolder; }

  // The Hub's answer about one file (etag, size, ...), asked with HubClient.
  FileMetadata Metadata(const std::string& revision, const std::string& file) const {
    HubClientOptions c;
    c.endpoint = hub_->endpoint();
    auto client = HubClient::Create(c);
    EXPECT_TRUE(client.ok()) << client.status();
    auto m = (*client)->GetFileMetadata(kRepo, revision, file, absl::Now() + absl::Seconds(10));
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : FileMetadata{};
  }

  std::string Commit(const std::string& revision) const {
    HubClientOptions c;
    c.endpoint = hub_->endpoint();
    auto client = HubClient::Create(c);
    auto info = (*client)->GetRevision(kRepo, revision, absl::Now() + absl::Seconds(10));
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->commit : "";
  }

  void PrintCache() const {
    std::fflush(stdout);
    const std::string cmd = absl::StrCat("cd '", cache_,
                                         "' && find . -printf '%y %p %l\\n' | sort");
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  static constexpr size_t kWeightBytes = 600 * 1000;
  std::string root_, cache_, repo_dir_;
  std::unique_ptr<FakeHub> hub_;
};

const std::vector<std::string> kExpectedFiles = {"chat_template.jinja", "config.json",
                                                 "model.safetensors", "tokenizer.json"};

// --- layout ---------------------------------------------------------------------------------

TEST_F(HubDownloadTest, FreshDownloadHasHuggingfaceHubLayout) {
  StartHub();
  const std::string commit = Commit("main");
  DownloadOptions o = Options();
  std::FILE* progress = std::tmpfile();
  o.progress = ProgressMode::kJsonLines;
  o.progress_stream = progress;
  auto snap = DownloadModel(o);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(*snap, RepoDir() + "/snapshots/" + commit);
  PrintCache();

  // refs/main holds the commit (no newline, as huggingface_hub writes it).
  EXPECT_EQ(ReadAll(RepoDir() + "/refs/main"), commit);
  // Only the model files, each a relative link to its blob, named by the Hub's etag.
  EXPECT_EQ(ListDir(*snap), kExpectedFiles);
  for (const std::string& f : kExpectedFiles) {
    const FileMetadata m = Metadata(commit, f);
    EXPECT_EQ(ReadLink(*snap + "/" + f), "../../blobs/" + m.etag) << f;
    EXPECT_EQ(ReadAll(RepoDir() + "/blobs/" + m.etag), ReadAll(repo_dir_ + "/" + f)) << f;
    EXPECT_TRUE(Exists(cache_ + "/.locks/" + kRepoFolder + "/" + m.etag + ".lock")) << f;
    EXPECT_EQ(m.lfs, f == "model.safetensors");
    EXPECT_EQ(m.etag.size(), m.lfs ? 64u : 40u);  // SHA-256 / git blob sha1
  }
  EXPECT_EQ(ListDir(RepoDir() + "/blobs").size(), kExpectedFiles.size());  // no .incomplete
  EXPECT_EQ(ListDir(RepoDir()), (std::vector<std::string>{"blobs", "refs", "snapshots"}));

  // One JSON line per file, with file, bytes and seconds.
  std::rewind(progress);
  std::map<std::string, nlohmann::json> lines;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), progress)) {
    auto j = nlohmann::json::parse(buf);
    lines[j["file"].get<std::string>()] = j;
  }
  std::fclose(progress);
  ASSERT_EQ(lines.size(), kExpectedFiles.size());
  EXPECT_EQ(lines["model.safetensors"]["bytes"], kWeightBytes);
  EXPECT_EQ(lines["model.safetensors"]["fetched_bytes"], kWeightBytes);
  EXPECT_TRUE(lines["model.safetensors"]["seconds"].is_number());
  EXPECT_EQ(lines["model.safetensors"]["cached"], false);

  // ResolveModelDir (offline only) finds it; a second download fetches nothing.
  auto resolved = model::ResolveModelDir(kRepo);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, *snap);
  const auto before = hub_->CdnGets();
  auto again = DownloadModel(Options());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *snap);
  EXPECT_EQ(hub_->CdnGets(), before);
}

TEST_F(HubDownloadTest, ProgressBar) {
  StartHub();
  DownloadOptions o = Options();
  std::FILE* out = std::tmpfile();
  o.progress = ProgressMode::kBar;  // what kAuto picks on a terminal
  o.progress_stream = out;
  ASSERT_TRUE(DownloadModel(o).ok());
  std::rewind(out);
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), out)) > 0;) text.append(buf, n);
  std::fclose(out);
  EXPECT_THAT(text, HasSubstr("\rmodel.safetensors"));
  EXPECT_THAT(text, HasSubstr("100% [########################]"));
  EXPECT_THAT(text, Not(HasSubstr("{")));  // no JSON lines
}

TEST_F(HubDownloadTest, PinnedCommitNeedsNoRef) {
  StartHub();
  const std::string commit = Commit("main");
  auto snap = DownloadModel(Options(commit));
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(*snap, RepoDir() + "/snapshots/" + commit);
  EXPECT_TRUE(ListDir(RepoDir() + "/refs").empty());
  auto resolved = model::ResolveModelDir(absl::StrCat(kRepo, "@", commit));
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, *snap);
}

TEST_F(HubDownloadTest, SecondBranchSharesBlobs) {
  const std::string v2 = MakeRepo("repo_v2", {{"config.json", R"({"model_type": "v2"})"},
                                              {"tokenizer.json", R"({"version": "1.0"})"},
                                              {"model.safetensors", RandomBytes(kWeightBytes, 1)}});
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--repo",
            std::string(kRepo) + "=" + v2 + "@v2"});
  auto main_snap = DownloadModel(Options("main"));
  ASSERT_TRUE(main_snap.ok()) << main_snap.status();
  auto v2_snap = DownloadModel(Options("v2"));
  ASSERT_TRUE(v2_snap.ok()) << v2_snap.status();
  EXPECT_NE(*main_snap, *v2_snap);
  EXPECT_EQ(ReadAll(RepoDir() + "/refs/v2"), Commit("v2"));
  EXPECT_EQ(ReadAll(RepoDir() + "/refs/main"), Commit("main"));
  EXPECT_EQ(ReadAll(*v2_snap + "/config.json"), R"({"model_type": "v2"})");
  // Same weights and tokenizer: one blob each, fetched once.
  EXPECT_EQ(ReadLink(*v2_snap + "/model.safetensors"), ReadLink(*main_snap + "/model.safetensors"));
  EXPECT_EQ(ListDir(RepoDir() + "/blobs").size(), 5u);  // 4 of main + config.json of v2
  EXPECT_EQ(hub_->CdnGets().first, 1);
  EXPECT_EQ(*model::ResolveModelDir(absl::StrCat(kRepo, "@v2")), *v2_snap);
}

// --- resumable, verified --------------------------------------------------------------------

TEST_F(HubDownloadTest, ResumesAfterCutConnection) {
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--cut_after_bytes", "100000"});
  auto snap = DownloadModel(Options());
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(ReadAll(*snap + "/model.safetensors"), ReadAll(repo_dir_ + "/model.safetensors"));
  std::vector<std::string> ranges;
  for (const auto& e : hub_->Log()) {
    if (e["listener"] == "cdn") ranges.push_back(e["range"].is_null() ? "" : e["range"]);
  }
  EXPECT_EQ(ranges, (std::vector<std::string>{"", "bytes=100000-"}));
  const auto [gets, bytes] = hub_->CdnGets();
  EXPECT_EQ(gets, 2);
  EXPECT_EQ(bytes, static_cast<int64_t>(kWeightBytes));  // < 2x: the partial file was kept
}

TEST_F(HubDownloadTest, ResumesIncompleteFileOfAnEarlierRun) {
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--cut_after_bytes", "100000"});
  DownloadOptions o = Options();
  o.max_attempts = 1;  // the cut ends this run
  auto first = DownloadModel(o);
  EXPECT_EQ(first.status().code(), StatusCode::kUnavailable) << first.status();
  EXPECT_THAT(std::string(first.status().message()), HasSubstr("model.safetensors"));
  const std::string etag = Metadata("main", "model.safetensors").etag;
  const std::string partial = RepoDir() + "/blobs/" + etag + ".incomplete";
  EXPECT_EQ(ReadAll(partial).size(), 100000u);
  EXPECT_FALSE(Exists(RepoDir() + "/refs/main"));  // nothing points at a partial snapshot
  EXPECT_TRUE(ListDir(RepoDir() + "/snapshots").empty());

  auto second = DownloadModel(Options());  // a new run (think: the pod restarted)
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(Exists(partial));
  EXPECT_EQ(ReadAll(*second + "/model.safetensors"), ReadAll(repo_dir_ + "/model.safetensors"));
  EXPECT_EQ(hub_->CdnGets().second, static_cast<int64_t>(kWeightBytes));
}

TEST_F(HubDownloadTest, CorruptedLfsFileIsRefused) {
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--corrupt", "model.safetensors"});
  auto snap = DownloadModel(Options());
  EXPECT_EQ(snap.status().code(), StatusCode::kDataLoss) << snap.status();
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("model.safetensors"));
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("SHA-256"));
  EXPECT_TRUE(ListDir(RepoDir() + "/snapshots").empty());
  EXPECT_FALSE(Exists(RepoDir() + "/refs/main"));
  const std::string etag = Metadata("main", "model.safetensors").etag;
  EXPECT_FALSE(Exists(RepoDir() + "/blobs/" + etag));
  EXPECT_FALSE(Exists(RepoDir() + "/blobs/" + etag + ".incomplete"));
  EXPECT_EQ(model::ResolveModelDir(kRepo).status().code(), StatusCode::kNotFound);
}

TEST_F(HubDownloadTest, CorruptedRegularFileIsRefused) {
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--corrupt", "config.json"});
  auto snap = DownloadModel(Options());
  EXPECT_EQ(snap.status().code(), StatusCode::kDataLoss) << snap.status();
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("config.json"));
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("git sha1"));
  EXPECT_TRUE(ListDir(RepoDir() + "/snapshots").empty());
}

// --- offline --------------------------------------------------------------------------------

TEST_F(HubDownloadTest, OfflineUsesTheCacheOnly) {
  StartHub();
  auto snap = DownloadModel(Options());
  ASSERT_TRUE(snap.ok()) << snap.status();
  hub_->Stop();  // no network from here on

  setenv("HF_HUB_OFFLINE", "1", 1);
  auto cached = DownloadModel(Options());
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(*cached, *snap);
  auto resolved = ResolveOrDownloadModel(kRepo);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, *snap);

  DownloadOptions other = Options();
  other.repo_id = "org/other";
  auto missing = DownloadModel(other);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("org/other"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("HF_HUB_OFFLINE"));
  EXPECT_EQ(ResolveOrDownloadModel("org/other").status().code(), StatusCode::kNotFound);
  auto no_branch = DownloadModel(Options("v9"));
  EXPECT_EQ(no_branch.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(std::string(no_branch.status().message()), HasSubstr("v9"));

  // A snapshot without its weights is not a model: the error names the missing file.
  ASSERT_EQ(unlink((*snap + "/model.safetensors").c_str()), 0);
  auto incomplete = DownloadModel(Options());
  EXPECT_EQ(incomplete.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(std::string(incomplete.status().message()), HasSubstr("model.safetensors"));
  auto incomplete2 = ResolveOrDownloadModel(kRepo);
  EXPECT_EQ(incomplete2.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(std::string(incomplete2.status().message()), HasSubstr("model.safetensors"));
}

// --- errors and credentials -----------------------------------------------------------------

TEST_F(HubDownloadTest, Errors) {
  const std::string no_weights = MakeRepo("no_weights", {{"config.json", "{}"}});
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--repo",
            "org/noweights=" + no_weights});
  DownloadOptions o = Options();
  o.repo_id = "org/unknown";
  EXPECT_EQ(DownloadModel(o).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(DownloadModel(Options("nosuchbranch")).status().code(), StatusCode::kNotFound);
  o.repo_id = "org/noweights";
  auto nw = DownloadModel(o);
  EXPECT_EQ(nw.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(std::string(nw.status().message()), HasSubstr("safetensors"));
  for (const char* bad : {"noslash", "a/b/c", "a/b c", "a/-b", "../x", "a--b/c", ""}) {
    o.repo_id = bad;
    EXPECT_EQ(DownloadModel(o).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  o = Options("../etc");
  EXPECT_EQ(DownloadModel(o).status().code(), StatusCode::kInvalidArgument);
  // Nobody listening: UNAVAILABLE after the retries.
  o = Options();
  hub_->Stop();
  auto down = DownloadModel(o);
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status();
}

TEST_F(HubDownloadTest, GatedRepoNeedsToken) {
  const std::string token = "hf_fake_secret_token";
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--gated",
            std::string(kRepo) + "=" + token});
  auto anonymous = DownloadModel(Options());
  EXPECT_EQ(anonymous.status().code(), StatusCode::kPermissionDenied) << anonymous.status();
  EXPECT_THAT(std::string(anonymous.status().message()), HasSubstr("HF_TOKEN"));

  setenv("HF_TOKEN", "hf_wrong", 1);
  auto wrong = DownloadModel(Options());
  EXPECT_EQ(wrong.status().code(), StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_THAT(std::string(wrong.status().message()), Not(HasSubstr("hf_wrong")));

  setenv("HF_TOKEN", token.c_str(), 1);
  auto ok = DownloadModel(Options());
  ASSERT_TRUE(ok.ok()) << ok.status();

  // The token went to the Hub, never to the CDN (another origin).
  int hub_with_auth = 0, cdn = 0;
  for (const auto& e : hub_->Log()) {
    if (e["listener"] == "cdn") {
      ++cdn;
      EXPECT_FALSE(e["auth"].get<bool>()) << e.dump();
    } else if (e["auth"].get<bool>()) {
      ++hub_with_auth;
    }
  }
  EXPECT_EQ(cdn, 1);
  EXPECT_GE(hub_with_auth, 1 + 4);  // the revision API + a HEAD per file (at least)
}

TEST_F(HubDownloadTest, TokenFromFileAndNotSentToCdn) {
  const std::string token = "hf_from_file";
  WriteAll(root_ + "/token", token + "\n");
  setenv("HF_TOKEN_PATH", (root_ + "/token").c_str(), 1);
  EXPECT_EQ(HfToken(), token);
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--gated",
            std::string(kRepo) + "=" + token});
  auto snap = DownloadModel(Options());
  ASSERT_TRUE(snap.ok()) << snap.status();
  for (const auto& e : hub_->Log()) {
    EXPECT_EQ(e["auth"].get<bool>(), e["listener"] == "hub") << e.dump();
  }
}

// --- concurrency ----------------------------------------------------------------------------

TEST_F(HubDownloadTest, ConcurrentThreadsDownloadEachBlobOnce) {
  // ~0.3 s for the weights, so that the two downloads overlap.
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--cdn_rate", "2000000"});
  absl::StatusOr<std::string> a, b;
  std::thread ta([&] { a = DownloadModel(Options()); });
  std::thread tb([&] { b = DownloadModel(Options()); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(hub_->CdnGets(), std::make_pair(1, static_cast<int64_t>(kWeightBytes)));
  EXPECT_EQ(ListDir(RepoDir() + "/blobs").size(), kExpectedFiles.size());
  EXPECT_EQ(ListDir(*a), kExpectedFiles);
  EXPECT_EQ(ReadAll(*a + "/model.safetensors"), ReadAll(repo_dir_ + "/model.safetensors"));
}

TEST_F(HubDownloadTest, ConcurrentProcessesShareOneCache) {
  StartHub({"--repo", std::string(kRepo) + "=" + repo_dir_, "--cdn_rate", "2000000"});
  const DownloadOptions o = Options();
  std::vector<pid_t> children;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(DownloadModel(o).ok() ? 0 : 1);
    children.push_back(pid);
  }
  auto mine = DownloadModel(o);
  ASSERT_TRUE(mine.ok()) << mine.status();
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(hub_->CdnGets(), std::make_pair(1, static_cast<int64_t>(kWeightBytes)));
  EXPECT_EQ(ListDir(RepoDir() + "/blobs").size(), kExpectedFiles.size());
  EXPECT_EQ(ListDir(*mine), kExpectedFiles);
  EXPECT_EQ(ReadAll(*mine + "/model.safetensors"), ReadAll(repo_dir_ + "/model.safetensors"));
}

// --- a real (tiny) model --------------------------------------------------------------------

TEST_F(HubDownloadTest, TinyModelDownloadedThenLoadable) {
  const std::string tiny = Runfile("tests/golden/models/tiny-smolvlm2-256m-geometry");
  StartHub({"--repo", "HuggingFaceTB/tiny-smolvlm2=" + tiny});
  DownloadOptions o = Options();
  o.repo_id = "HuggingFaceTB/tiny-smolvlm2";
  auto snap = DownloadModel(o);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_FALSE(Exists(*snap + "/TOKENIZER.txt"));  // not a model file
  EXPECT_TRUE(Exists(*snap + "/tokenizer.json"));
  EXPECT_TRUE(Exists(*snap + "/processor_config.json"));
  auto config = model::LoadModelConfig(*snap);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(model::LoadGenerationConfig(*snap).ok());
  auto store = model::WeightStore::Open(*snap);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->Names().empty());
}

// --- ResolveOrDownloadModel -----------------------------------------------------------------

TEST_F(HubDownloadTest, ResolveOrDownloadModel) {
  StartHub();
  setenv("HF_ENDPOINT", hub_->endpoint().c_str(), 1);
  auto first = ResolveOrDownloadModel(kRepo);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, RepoDir() + "/snapshots/" + Commit("main"));
  EXPECT_EQ(hub_->CdnGets().first, 1);

  // Cached: no request at all.
  const size_t requests = hub_->Log().size();
  auto second = ResolveOrDownloadModel(kRepo);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, *first);
  EXPECT_EQ(hub_->Log().size(), requests);

  // A snapshot without its weights is completed: relinked to the blob still there, no
  // transfer. (Without tokenizer.json it would still count as usable: config + weights.)
  ASSERT_EQ(unlink((*first + "/model.safetensors").c_str()), 0);
  auto third = ResolveOrDownloadModel(kRepo);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(*third, *first);
  EXPECT_TRUE(Exists(*first + "/model.safetensors"));
  EXPECT_EQ(hub_->CdnGets().first, 1);

  // A local directory is itself; a missing path is NOT_FOUND; junk is INVALID_ARGUMENT.
  EXPECT_EQ(*ResolveOrDownloadModel(repo_dir_), repo_dir_);
  EXPECT_EQ(ResolveOrDownloadModel("/no/such/dir").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ResolveOrDownloadModel("not a repo").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveOrDownloadModel("org/unknown").status().code(), StatusCode::kNotFound);
}

// --- helpers --------------------------------------------------------------------------------

TEST(ParseRepoSpecTest, AcceptsAndRejects) {
  auto r = ParseRepoSpec("HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->repo_id, "HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
  EXPECT_EQ(r->revision, "main");
  r = ParseRepoSpec("a/b@refs/pr/1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->revision, "refs/pr/1");
  for (const char* bad : {"", "a", "a/b/c", "/a", "a/", "a/b@", "a/b@..", "a/b@/x", "a/.b",
                          "a/b-", "a--x/b", "a/b@x y", "a b/c"}) {
    EXPECT_EQ(ParseRepoSpec(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HelpersTest, ModelFilesFolderNameEnvironment) {
  for (const char* f : {"config.json", "model.safetensors", "model-00001-of-00002.safetensors",
                        "model.safetensors.index.json", "chat_template.jinja", "merges.txt"}) {
    EXPECT_TRUE(IsModelFile(f)) << f;
  }
  for (const char* f : {"README.md", "pytorch_model.bin", "onnx/model.safetensors",
                        ".safetensors", "../model.safetensors", "x y.safetensors"}) {
    EXPECT_FALSE(IsModelFile(f)) << f;
  }
  EXPECT_EQ(RepoFolderName("org/name"), "models--org--name");
  for (const char* v : {"1", "true", "YES", "on"}) {
    setenv("HF_HUB_OFFLINE", v, 1);
    EXPECT_TRUE(HfHubOffline()) << v;
  }
  setenv("HF_HUB_OFFLINE", "0", 1);
  EXPECT_FALSE(HfHubOffline());
  unsetenv("HF_HUB_OFFLINE");
  setenv("HF_ENDPOINT", "http://mirror.example/", 1);
  EXPECT_EQ(HfEndpoint(), "http://mirror.example");
  unsetenv("HF_ENDPOINT");
  EXPECT_EQ(HfEndpoint(), "https://huggingface.co");
}

}  // namespace
}  // namespace smolserve::hub
