// TLS on the public ports and mutual TLS between the stages, with certificates made at test
// time by openssl: the front serves gRPC and HTTPS to clients that trust its CA and refuses
// plain ones; vision and decoder require a client certificate of the internal CA, so only the
// front (holding one) can call them — a plain client, a TLS client without a certificate and
// one with a certificate of another CA are refused.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/smolserve/v1/front.grpc.pb.h"
#include "proto/smolserve/v1/vision.grpc.pb.h"
#include "tests/integration/stage_process.h"

namespace smolserve::testing {
namespace {

const std::string kModel = "--model=tests/golden/models/tiny-smolvlm2-256m-geometry";

std::string Dir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d ? d : "/tmp") + "/tls";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int Run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// A CA and a certificate signed by it: NAME.key / NAME.pem under Dir().
void MakeCa(const std::string& name) {
  const std::string d = Dir();
  ASSERT_EQ(Run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", name,
                             " -keyout ", d, "/", name, ".key -out ", d, "/", name, ".pem")), 0);
}

void MakeCert(const std::string& name, const std::string& ca, bool server) {
  const std::string d = Dir();
  const std::string ext = absl::StrCat(d, "/", name, ".ext");
  std::ofstream(ext) << (server ? "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                                : "extendedKeyUsage=clientAuth\n");
  ASSERT_EQ(Run(absl::StrCat("openssl req -newkey rsa:2048 -nodes -subj /CN=", name, " -keyout ", d, "/", name,
                             ".key -out ", d, "/", name, ".csr")), 0);
  ASSERT_EQ(Run(absl::StrCat("openssl x509 -req -days 2 -in ", d, "/", name, ".csr -CA ", d, "/", ca,
                             ".pem -CAkey ", d, "/", ca, ".key -CAcreateserial -extfile ", ext, " -out ",
                             d, "/", name, ".pem")), 0);
}

std::string F(const std::string& name) { return Dir() + "/" + name; }

std::shared_ptr<::grpc::Channel> TlsChannel(const std::string& address, const std::string& ca,
                                            const std::string& cert = "", const std::string& key = "") {
  ::grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(F(ca));
  if (!cert.empty()) {
    o.pem_cert_chain = ReadFile(F(cert));
    o.pem_private_key = ReadFile(F(key));
  }
  return ::grpc::CreateChannel(address, ::grpc::SslCredentials(o));
}

::grpc::Status Chat(const std::shared_ptr<::grpc::Channel>& channel) {
  auto stub = v1::Front::NewStub(channel);
  v1::ChatRequest req;
  auto* m = req.add_conversations()->add_messages();
  m->set_role("user");
  m->add_content()->set_text("Hello");
  req.mutable_generation()->set_max_new_tokens(3);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub->Chat(&ctx, req);
  v1::ChatResponse msg;
  bool result = false;
  while (reader->Read(&msg)) result = result || msg.has_result();
  ::grpc::Status s = reader->Finish();
  if (s.ok() && !result) return ::grpc::Status(::grpc::StatusCode::INTERNAL, "no result");
  return s;
}

// An Encode call with an empty request: answered INVALID_ARGUMENT by a vision stage that let
// the caller in; a refused connection is UNAVAILABLE.
::grpc::StatusCode VisionCall(const std::shared_ptr<::grpc::Channel>& channel) {
  auto stub = v1::Vision::NewStub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::EncodeRequest req;
  v1::EncodeResponse resp;
  return stub->Encode(&ctx, req, &resp).error_code();
}

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mkdir(Dir().c_str(), 0700);
    MakeCa("internal-ca");
    MakeCa("public-ca");
    MakeCa("rogue-ca");
    MakeCert("stage", "internal-ca", true);
    MakeCert("front-client", "internal-ca", false);
    MakeCert("rogue-client", "rogue-ca", false);
    MakeCert("public", "public-ca", true);
    const std::vector<std::string> mtls = {"--tls_cert=" + F("stage.pem"), "--tls_key=" + F("stage.key"),
                                           "--tls_ca=" + F("internal-ca.pem"), "--health_port=0"};
    std::vector<std::string> v = {kModel, "--threads=1"}, d = v;
    v.insert(v.end(), mtls.begin(), mtls.end());
    d.insert(d.end(), mtls.begin(), mtls.end());
    vision_ = new StageProcess("vision", "services/vision/vision_server", v);
    decoder_ = new StageProcess("decoder", "services/decoder/decoder_server", d);
    ASSERT_TRUE(vision_->Start()) << vision_->Log();
    ASSERT_TRUE(decoder_->Start()) << decoder_->Log();
    front_ = new StageProcess(
        "front", "services/preprocess/preprocess_server",
        {kModel, "--vision_target=" + vision_->address(), "--decoder_target=" + decoder_->address(),
         "--downstream_tls_ca=" + F("internal-ca.pem"), "--downstream_tls_cert=" + F("front-client.pem"),
         "--downstream_tls_key=" + F("front-client.key"), "--tls_cert=" + F("public.pem"),
         "--tls_key=" + F("public.key"), "--health_port=0"});
    ASSERT_TRUE(front_->Start()) << front_->Log();
  }
  static void TearDownTestSuite() {
    delete front_;
    delete vision_;
    delete decoder_;
  }
  static StageProcess *vision_, *decoder_, *front_;
};
StageProcess* Tls::vision_ = nullptr;
StageProcess* Tls::decoder_ = nullptr;
StageProcess* Tls::front_ = nullptr;

TEST_F(Tls, TheFrontServesTlsClientsOverMutualTlsToTheStages) {
  ::grpc::Status s = Chat(TlsChannel(front_->address(), "public-ca.pem"));
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(Tls, APlainClientIsRefusedByEveryStage) {
  for (const StageProcess* p : {front_, vision_, decoder_}) {
    auto plain = ::grpc::CreateChannel(p->address(), ::grpc::InsecureChannelCredentials());
    ::grpc::Status s = Chat(plain);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
}

TEST_F(Tls, OnlyAClientCertificateOfTheInternalCaReachesVision) {
  EXPECT_EQ(VisionCall(TlsChannel(vision_->address(), "internal-ca.pem")), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(VisionCall(TlsChannel(vision_->address(), "internal-ca.pem", "rogue-client.pem", "rogue-client.key")),
            ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(VisionCall(TlsChannel(vision_->address(), "internal-ca.pem", "front-client.pem", "front-client.key")),
            ::grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(Tls, HttpsWithCurl) {
  const std::string url = absl::StrCat("https://127.0.0.1:", front_->http_port(), "/v1/chat/completions");
  const std::string body = F("body.json");
  std::ofstream(body) << R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})";
  auto curl = [&](const std::string& args) {
    const std::string cmd = absl::StrCat("curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' -m 60 ", args,
                                         " -H 'Content-Type: application/json' --data-binary @", body, " ");
    FILE* pipe = popen(cmd.c_str(), "r");
    char buf[64] = {0};
    fread(buf, 1, sizeof(buf) - 1, pipe);
    pclose(pipe);
    return std::string(buf);
  };
  EXPECT_EQ(curl("--cacert " + F("public-ca.pem") + " " + url), "200");
  EXPECT_EQ(curl("--cacert " + F("rogue-ca.pem") + " " + url), "000");  // untrusted server
  std::string plain = url;
  plain.replace(0, 5, "http");
  EXPECT_EQ(curl(plain), "000");  // plain HTTP to the TLS port
}

// A front without the client certificate cannot reach the stages: its health says so.
TEST_F(Tls, AFrontWithoutTheClientCertificateIsNotReady) {
  StageProcess front("front_nocert", "services/preprocess/preprocess_server",
                     {kModel, "--vision_target=" + vision_->address(), "--decoder_target=" + decoder_->address(),
                      "--downstream_tls_ca=" + F("internal-ca.pem")});
  EXPECT_FALSE(front.Start(0, 8));  // never SERVING
  EXPECT_NE(front.Log().find("not_serving"), std::string::npos) << front.Log();
}

}  // namespace
}  // namespace smolserve::testing
