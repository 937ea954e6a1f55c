// A Vision.Encode request as the vision stage receives it -> ParseEncodeRequest (the service's
// request checks: TensorFromProto, dtype, rank, tile side, tile count), then
// EncodeBatcher::Submit (VisionModel::PlanTiles' checks: shape, patch grid, mask type, shape
// and values, NaN/infinity; the embedding cache keys) and, when accepted, the encoding on the
// tiny test model (tests/golden/models/tiny-smolvlm2-256m-geometry, 16-pixel patches, so
// 64 x 64 tiles are the smallest valid ones). Input: a mode byte, then the serialized
// EncodeRequest or a compact description (shapes near the valid ones, a byte pattern for the
// values: NaN and infinity included, an optional mask of any integer type).
// Invariants: refusals are client errors; an accepted request is answered once, with one
// [S, D] row per real tile.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "common/model/config.h"
#include "common/model/weights.h"
#include "proto/smolserve/v1/vision.pb.h"
#include "services/vision/core/encode_batcher.h"
#include "services/vision/core/vision_model.h"
#include "services/vision/server/vision_service.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace smolserve;

vision::VisionModel* g_model = nullptr;
vision::EncodeBatcher* batcher = nullptr;
constexpr int64_t kMaxTiles = 1024;  // VisionServiceOptions' defaults
int64_t max_tile_side = 0;

void FillTensor(fuzz::Bytes& in, v1::Tensor::DType dtype, const std::vector<int64_t>& shape,
                v1::Tensor* t) {
  t->set_dtype(dtype);
  int64_t n = 1;
  for (int64_t d : shape) {
    t->add_shape(d);
    n *= d;
  }
  const size_t elem = dtype == v1::Tensor::INT64 ? 8 : dtype == v1::Tensor::FLOAT32 ||
                                                           dtype == v1::Tensor::INT32
                                                       ? 4
                                                   : dtype == v1::Tensor::UINT8 ||
                                                           dtype == v1::Tensor::BOOL
                                                       ? 1
                                                       : 2;
  int64_t bytes = std::max<int64_t>(n, 0) * static_cast<int64_t>(elem);
  if (in.U8() == 0) bytes += in.U8() % 9 - 4;  // a byte count that does not match, sometimes
  std::string data(static_cast<size_t>(std::max<int64_t>(bytes, 0)), '\0');
  const std::string pattern = in.String(12);
  for (size_t i = 0; !pattern.empty() && i < data.size(); ++i) data[i] = pattern[i % pattern.size()];
  t->set_data(std::move(data));
}

void Describe(fuzz::Bytes& in, v1::EncodeRequest* req) {
  static constexpr int64_t kSides[] = {64, 64, 64, 128, 48, 80, 16, 0};
  const uint8_t shape = in.U8();
  std::vector<int64_t> lead = {in.U8() % 3 + ((shape & 1) ? 0 : 1)};
  if (shape & 2) lead.insert(lead.begin(), in.U8() % 3);
  const int64_t c = (shape & 4) ? in.U8() % 5 : 3;
  const int64_t h = kSides[in.U8() % 8], w = (shape & 8) ? kSides[in.U8() % 8] : h;
  std::vector<int64_t> pixels = lead;
  pixels.insert(pixels.end(), {c, h, w});
  FillTensor(in, (shape & 16) ? static_cast<v1::Tensor::DType>(in.U8() % 8) : v1::Tensor::FLOAT32,
             pixels, req->mutable_pixel_values());
  if (shape & 32) {
    std::vector<int64_t> mask = lead;
    mask.insert(mask.end(), {h, (shape & 64) ? w + 1 : w});
    static constexpr v1::Tensor::DType kMaskTypes[] = {v1::Tensor::BOOL, v1::Tensor::UINT8,
                                                       v1::Tensor::INT64, v1::Tensor::INT32,
                                                       v1::Tensor::FLOAT32};
    FillTensor(in, kMaskTypes[in.U8() % 5], mask, req->mutable_pixel_attention_mask());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  fuzz::SetProgramPath((*argv)[0]);
  at::set_num_threads(1);
  const std::string dir = fuzz::DataPath("tests/golden/models/tiny-smolvlm2-256m-geometry");
  auto config = model::LoadModelConfig(dir);
  if (!config.ok()) fuzz::Fail("config", config.status().ToString());
  auto store = model::WeightStore::Open(dir);
  if (!store.ok()) fuzz::Fail("weights", store.status().ToString());
  auto m = vision::VisionModel::Create(*config, **store);
  if (!m.ok()) fuzz::Fail("vision model", m.status().ToString());
  g_model = m->release();
  max_tile_side = config->vision.image_size;
  vision::EncodeBatcherOptions o;
  o.max_batch_tiles = 4;
  o.max_wait = std::chrono::microseconds(0);
  o.cache_bytes = 1 << 20;
  o.model_revision = "fuzz";
  auto b = vision::EncodeBatcher::Create(g_model, o);
  if (!b.ok()) fuzz::Fail("batcher", b.status().ToString());
  batcher = b->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  v1::EncodeRequest request;
  if (in.U8() & 1) {
    if (!request.ParseFromString(in.Rest())) return 0;  // refused by gRPC
  } else {
    Describe(in, &request);
  }
  vision::EncodeJob job;
  int64_t tiles = 0;
  if (absl::Status s = vision::ParseEncodeRequest(request, kMaxTiles, max_tile_side, &job, &tiles);
      !s.ok()) {
    FUZZ_CHECK(fuzz::IsClientError(s), s.ToString());
    return 0;
  }
  auto done = std::make_shared<std::promise<absl::StatusOr<vision::EncodeResult>>>();
  std::future<absl::StatusOr<vision::EncodeResult>> result = done->get_future();
  const absl::Status submitted =
      batcher->Submit(std::move(job), [done](absl::StatusOr<vision::EncodeResult> r) {
        done->set_value(std::move(r));
      });
  if (!submitted.ok()) {
    FUZZ_CHECK(fuzz::IsClientError(submitted), submitted.ToString());
    return 0;
  }
  const absl::StatusOr<vision::EncodeResult> r = result.get();
  FUZZ_CHECK(r.ok(), r.status().ToString());
  const at::Tensor& out = r->image_hidden_states;
  const int64_t n_real = static_cast<int64_t>(r->real_tile_indices.size());
  FUZZ_CHECK(n_real >= 1 && n_real <= tiles && r->tiles == n_real, "tile count");
  FUZZ_CHECK(out.dim() == 3 && out.size(0) == n_real, "output shape");
  for (size_t i = 0; i < r->real_tile_indices.size(); ++i) {
    FUZZ_CHECK(r->real_tile_indices[i] >= 0 && r->real_tile_indices[i] < tiles &&
                   (i == 0 || r->real_tile_indices[i] > r->real_tile_indices[i - 1]),
               "real tile indices");
  }
  return 0;
}
