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

// Small-batch matrix-vector products: for rows n in [n0, n1) and b < B,
//   y[b * ldy + n] (=, or += when accumulate) dot(w[n * K .. n * K + K), x[b * K ..)).
// Batch-invariant: y[b] is bit-identical whatever B is and whichever vectors share the call
// (every vector is reduced in the same order), so a sequence decodes to the same logits
// alone or in a batch. Weight rows are read from memory once for all B vectors (blocks of
// rows stay in cache while groups of vectors pass). Register tiles (AVX-512: 4 rows x up to 4
// vectors; AVX2+FMA: 4 rows x 3 vectors, cache-blocked, so that a prefill chunk runs at about
// the rate of a GEMM) where the CPU has them, else rows one at a time (each variant is
// batch-invariant on its own).
void GemvRows(const float* w, int64_t n0, int64_t n1, int64_t K, const float* x, int64_t B,
              float* y, int64_t ldy, bool accumulate);
// The row-at-a-time kernel GemvRows falls back to on CPUs without AVX2+FMA (exposed so that
// tests and benchmarks run it on any CPU).
void GemvRowsPortable(const float* w, int64_t n0, int64_t n1, int64_t K, const float* x,
                      int64_t B, float* y, int64_t ldy, bool accumulate);

// The same products with 8-bit weights: w holds int8 rows [N, K] with one float scale per
// row (symmetric, per output channel), and
//   y[b * ldy + n] (=, or +=) scales[n] * dot(float(w[n, :]), x[b, :]).
// The weights are widened to float32 in registers, so each token reads a quarter of the bytes
// of GemvRows. Batch-invariant in the same way as GemvRows (a fixed accumulation order per
// (row, vector) whatever B is). AVX2+FMA where the CPU has them (rows in order against groups
// of up to 4 vectors), else a portable loop.
void GemvRowsInt8(const int8_t* w, const float* scales, int64_t n0, int64_t n1, int64_t K,
                  const float* x, int64_t B, float* y, int64_t ldy, bool accumulate);
// The portable loop GemvRowsInt8 falls back to (exposed so that tests run it on any CPU).
void GemvRowsInt8Portable(const int8_t* w, const float* scales, int64_t n0, int64_t n1,
                          int64_t K, const float* x, int64_t B, float* y, int64_t ldy,
                          bool accumulate);

}  // namespace smolserve::decoder::internal

#endif  // SMOLSERVE_SERVICES_DECODER_CORE_DECODE_KERNELS_H_
