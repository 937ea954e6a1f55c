// A smolserve.v1.Tensor as it arrives in a Vision.Encode or Decoder.Generate request ->
// TensorFromProto, which both stages call on client tensors before anything else. Input: a
// mode byte, then either the serialized proto (what gRPC hands the service) or a compact
// description (dtype, shape, data) that reaches the size checks with large shapes.
// Invariants: refusals are INVALID_ARGUMENT / RESOURCE_EXHAUSTED; an accepted tensor has the
// proto's dtype and shape, and exactly its bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "common/grpc/tensor_proto.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using smolserve::v1::Tensor;
  smolserve::fuzz::Bytes in(data, size);
  Tensor proto;
  if (in.U8() & 1) {
    const std::string wire = in.Rest();
    if (!proto.ParseFromString(wire)) return 0;  // gRPC refuses it before the service
  } else {
    proto.set_dtype(static_cast<Tensor::DType>(in.U8() % 9));
    const int dims = in.U8() % 7;
    for (int i = 0; i < dims; ++i) {
      const uint8_t kind = in.U8();
      // Small dimensions, some huge or negative ones.
      proto.add_shape(kind < 200   ? kind % 9
                      : kind < 250 ? static_cast<int64_t>(in.U32())
                                   : static_cast<int64_t>(in.U64()));
    }
    proto.set_data(in.Rest());
  }
  const int64_t max_elements = int64_t{1} << 31;  // the services' default
  absl::StatusOr<at::Tensor> t = smolserve::grpc_util::TensorFromProto(proto, "fuzz", max_elements);
  if (!t.ok()) {
    FUZZ_CHECK(t.status().code() == absl::StatusCode::kInvalidArgument ||
                   t.status().code() == absl::StatusCode::kResourceExhausted,
               t.status().ToString());
    return 0;
  }
  FUZZ_CHECK(t->dim() == proto.shape_size(), "rank");
  for (int i = 0; i < proto.shape_size(); ++i) FUZZ_CHECK(t->size(i) == proto.shape(i), "shape");
  FUZZ_CHECK(t->is_contiguous() && t->nbytes() == proto.data().size(), "byte count");
  FUZZ_CHECK(t->numel() <= max_elements, "element limit");
  FUZZ_CHECK(proto.data().empty() || std::memcmp(t->data_ptr(), proto.data().data(),
                                                 proto.data().size()) == 0,
             "contents");
  // And back: what the stages send.
  Tensor back;
  FUZZ_CHECK(smolserve::grpc_util::TensorToProto(*t, &back).ok(), "TensorToProto");
  FUZZ_CHECK(back.data() == proto.data() && back.shape_size() == proto.shape_size(), "round trip");
  return 0;
}
