// Internal float32 kernels of the fast decode step (text_model.cc). Not a public API.
#ifndef SMOLSERVE_SERVICES_DECODER_CORE_DECODE_KERNELS_H_
#define SMOLSERVE_SERVICES_DECODER_CORE_DECODE_KERNELS_H_

#include <cstdint>

namespace smolserve::decoder::internal {

// Attention of one query head over T cached positions:
//   out = softmax(scale * q . k_t, over t with valid[t]) @ v
// q: [hd]; k, v: [T, hd] with contiguous rows; valid: [T] (at least one true); scores:
// scratch [T]; out: [hd]. Invalid keys get probability exactly 0, as finfo.min does in HF.
// Compiled for AVX2 and for the baseline ISA; the CPU picks at load time.
void AttendOneHead(const float* q, const float* k, const float* v, const bool* valid,
                   int64_t T, int64_t hd, float scale, float* scores, float* out);

}  // namespace smolserve::decoder::internal

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_DECODE_KERNELS_H_
