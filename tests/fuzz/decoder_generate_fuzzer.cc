// A Decoder.Generate request as the decoder stage receives it -> what DecoderService::Generate
// does: GenerationFromProto, TensorFromProto on image_hidden_states, then SubmitStream
// (FillGenerateRequest / ValidateGenerationParams, prompt and embedding checks, the batch
// engine's request validation and embedding merge) and, when accepted, the generation itself
// on the tiny test model (tests/golden/models/tiny-smolvlm2-256m-geometry) with at most 8 new
// tokens. Input: a mode byte, then the serialized GenerateRequest or a compact description
// (ids around the vocabulary and image token runs, parameters, embeddings) that gets past the
// shape checks more often.
// Invariants: refusals are client errors; an accepted request ends exactly once, with at most
// max_new_tokens token deltas, streamed text that is valid UTF-8 and holds no stop string.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "common/grpc/generation_proto.h"
#include "common/grpc/tensor_proto.h"
#include "proto/smolserve/v1/decoder.pb.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/decoder_model.h"
#include "services/decoder/core/generation_stream.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace smolserve;

decoder::DecoderModel* g_model = nullptr;
decoder::BatchEngine* engine = nullptr;
decoder::DecoderLimits limits;

void Describe(fuzz::Bytes& in, v1::GenerateRequest* req) {
  const decoder::TextModelDims& dims = g_model->model->dims();
  const int n = in.U8() % 48 + 1;
  int images = 0;
  for (int i = 0; i < n && in.remaining() > 0; ++i) {
    const uint8_t kind = in.U8();
    if (kind < 8) {  // one image's worth of <image> tokens
      for (int k = 0; k < dims.image_seq_len; ++k) req->add_input_ids(dims.image_token_id);
      ++images;
    } else if (kind < 16) {
      req->add_input_ids(static_cast<int32_t>(in.U32()));  // anything
    } else {
      req->add_input_ids(in.U16() % (dims.vocab_size + 8));
    }
  }
  v1::GenerationParams* g = req->mutable_generation();
  const uint8_t set = in.U8();
  if (set & 1) g->set_max_new_tokens(in.U8() % 12);
  if (set & 2) { float t; uint32_t b = in.U32(); std::memcpy(&t, &b, 4); g->set_temperature(t); }
  if (set & 4) g->set_top_p(in.U8() / 200.0f);
  if (set & 8) g->set_top_k(in.U8());
  if (set & 16) g->set_repetition_penalty(in.U8() / 64.0f);
  if (set & 32) g->set_seed(in.U64());
  g->set_ignore_eos(set & 64);
  for (int s = in.U8() % 3; s > 0; --s) g->add_stop(in.String(6));
  if (set & 128) {
    v1::Tensor* t = req->mutable_image_hidden_states();
    t->set_dtype(in.Bool() ? v1::Tensor::FLOAT32 : v1::Tensor::BFLOAT16);
    const int64_t count = images + static_cast<int>(in.U8() % 3) - 1;
    t->add_shape(count);
    t->add_shape(dims.image_seq_len);
    t->add_shape(dims.hidden_size);
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 0)) * dims.image_seq_len *
                         dims.hidden_size * (t->dtype() == v1::Tensor::FLOAT32 ? 4 : 2);
    std::string data(bytes, '\0');
    const std::string pattern = in.String(16);  // may hold NaN / infinity bit patterns
    for (size_t i = 0; !pattern.empty() && i < bytes; ++i) data[i] = pattern[i % pattern.size()];
    t->set_data(std::move(data));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  fuzz::SetProgramPath((*argv)[0]);
  at::set_num_threads(1);
  auto m = decoder::LoadDecoderModel(fuzz::DataPath("tests/golden/models/tiny-smolvlm2-256m-geometry"),
                                     at::kFloat);
  if (!m.ok()) fuzz::Fail("loading the tiny model", m.status().ToString());
  g_model = m->release();
  decoder::BatchEngineOptions eo;
  eo.max_running = 2;
  eo.kv_cache_budget_bytes = int64_t{64} << 20;
  eo.thread_init = [] { at::set_num_threads(1); };
  auto e = decoder::BatchEngine::Create(*g_model->model, eo);
  if (!e.ok()) fuzz::Fail("creating the engine", e.status().ToString());
  engine = e->release();
  limits.default_max_new_tokens = 4;
  limits.generation.max_new_tokens = 8;
  limits.max_prompt_tokens = 1024;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  v1::GenerateRequest request;
  if (in.U8() & 1) {
    if (!request.ParseFromString(in.Rest())) return 0;  // refused by gRPC
  } else {
    Describe(in, &request);
  }
  // DecoderService::Generate.
  decoder::StreamInput input;
  input.input_ids.assign(request.input_ids().begin(), request.input_ids().end());
  input.generation = grpc_util::GenerationFromProto(request.generation());
  if (request.has_image_hidden_states()) {
    auto images = grpc_util::TensorFromProto(request.image_hidden_states(), "image_hidden_states");
    if (!images.ok()) {
      FUZZ_CHECK(fuzz::IsClientError(images.status()), images.status().ToString());
      return 0;
    }
    input.image_hidden_states = *images;
  }
  const std::vector<std::string> stops = input.generation.stop;
  struct Result {
    std::string text;
    int64_t token_deltas = 0;
    int done_calls = 0;
    std::promise<absl::StatusOr<GenerationOutcome>> done;
  };
  auto result = std::make_shared<Result>();
  decoder::StreamCallbacks cb;
  cb.on_delta = [result](TokenDelta delta) {
    result->text += delta.text;
    if (!delta.token_ids.empty()) ++result->token_deltas;
  };
  cb.on_done = [result](absl::StatusOr<GenerationOutcome> outcome) {
    if (++result->done_calls == 1) result->done.set_value(std::move(outcome));
  };
  std::future<absl::StatusOr<GenerationOutcome>> done = result->done.get_future();
  const absl::Status submitted =
      decoder::SubmitStream(*engine, *g_model, limits, std::move(input), std::move(cb));
  if (!submitted.ok()) {
    FUZZ_CHECK(fuzz::IsClientError(submitted), submitted.ToString());
    return 0;
  }
  const absl::StatusOr<GenerationOutcome> outcome = done.get();
  FUZZ_CHECK(outcome.ok(), outcome.status().ToString());
  FUZZ_CHECK(result->done_calls == 1, "on_done more than once");
  FUZZ_CHECK(result->token_deltas == outcome->completion_tokens &&
                 outcome->completion_tokens <= limits.generation.max_new_tokens,
             absl::StrCat(result->token_deltas, " token deltas, ", outcome->completion_tokens,
                          " completion tokens"));
  FUZZ_CHECK(fuzz::IsValidUtf8(result->text), "streamed text is not UTF-8");
  for (const std::string& s : stops) {
    FUZZ_CHECK(result->text.find(s) == std::string::npos, "a stop string was streamed");
  }
  return 0;
}
