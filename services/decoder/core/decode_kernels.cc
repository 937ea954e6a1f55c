#include "services/decoder/core/decode_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace smolserve::decoder::internal {
namespace {

// The helpers below are always inlined, so the vector-return ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

// 8-lane float vectors (GCC vector extensions): AVX registers in the avx2 clone, pairs of
// SSE registers in the default one. Unaligned, aliasing-safe loads and stores.
typedef float V8 __attribute__((vector_size(32)));
typedef float V8U __attribute__((vector_size(32), aligned(4), may_alias));

inline __attribute__((always_inline)) V8 Load(const float* p) {
  return *reinterpret_cast<const V8U*>(p);
}
inline __attribute__((always_inline)) void Store(float* p, V8 x) {
  *reinterpret_cast<V8U*>(p) = x;
}
inline __attribute__((always_inline)) float Sum(V8 x) {
  return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
}

// Rows [n0, n1) of y = x w^T for a compile-time number of vectors B <= 4. Every vector is
// accumulated the same way whatever B is (two 8-lane accumulators over k in steps of 16, then
// the same reduction and tail), so a vector's result does not depend on which other vectors
// share the call.
template <int B>
inline __attribute__((always_inline)) void GemvRowsFixed(const float* w, int64_t n0, int64_t n1,
                                                         int64_t K, const float* x, float* y,
                                                         int64_t ldy, bool accumulate) {
  constexpr int A = 2;
  constexpr int64_t step = 8 * A;
  const int64_t kv = K / step * step;
  for (int64_t n = n0; n < n1; ++n) {
    const float* wr = w + n * K;
    V8 acc[B][A];
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
#pragma GCC unroll 2
      for (int i = 0; i < A; ++i) acc[b][i] = V8{0, 0, 0, 0, 0, 0, 0, 0};
    }
    for (int64_t k = 0; k < kv; k += step) {
      V8 wv[A];
#pragma GCC unroll 2
      for (int i = 0; i < A; ++i) wv[i] = Load(wr + k + 8 * i);
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) {
#pragma GCC unroll 2
        for (int i = 0; i < A; ++i) acc[b][i] += wv[i] * Load(x + b * K + k + 8 * i);
      }
    }
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
      const float s0 = Sum(acc[b][0] + acc[b][1]);
      float s = s0;
      for (int64_t k = kv; k < K; ++k) s += wr[k] * x[b * K + k];
      float& out = y[b * ldy + n];
      out = accumulate ? out + s : s;
    }
  }
}

// Blocks of weight rows stay in cache while every group of (up to) 4 vectors passes over
// them; `rows<G>(w, n0, n1, K, x, y, ldy, accumulate)` does one group of G vectors.
template <template <int> class Rows>
inline __attribute__((always_inline)) void GemvBlocks(const float* w, int64_t n0, int64_t n1,
                                                      int64_t K, const float* x, int64_t B,
                                                      float* y, int64_t ldy, bool accumulate) {
  constexpr int64_t kBlock = 16;
  for (int64_t nb = n0; nb < n1; nb += kBlock) {
    const int64_t ne = std::min(n1, nb + kBlock);
    for (int64_t b0 = 0; b0 < B; b0 += 4) {
      const float* xb = x + b0 * K;
      float* yb = y + b0 * ldy;
      switch (std::min<int64_t>(4, B - b0)) {
        case 1: Rows<1>::Run(w, nb, ne, K, xb, yb, ldy, accumulate); break;
        case 2: Rows<2>::Run(w, nb, ne, K, xb, yb, ldy, accumulate); break;
        case 3: Rows<3>::Run(w, nb, ne, K, xb, yb, ldy, accumulate); break;
        default: Rows<4>::Run(w, nb, ne, K, xb, yb, ldy, accumulate); break;
      }
    }
  }
}

template <int B>
struct RowsV8 {
  static inline __attribute__((always_inline)) void Run(const float* w, int64_t n0, int64_t n1,
                                                        int64_t K, const float* x, float* y,
                                                        int64_t ldy, bool accumulate) {
    GemvRowsFixed<B>(w, n0, n1, K, x, y, ldy, accumulate);
  }
};

// Rows one at a time (CPUs without AVX2+FMA, and the portable reference of the tests).
__attribute__((target_clones("avx2", "default"))) void GemvRowsV8(
    const float* w, int64_t n0, int64_t n1, int64_t K, const float* x, int64_t B, float* y,
    int64_t ldy, bool accumulate) {
  GemvBlocks<RowsV8>(w, n0, n1, K, x, B, y, ldy, accumulate);
}

// ---- int8 weights ----

}  // namespace

// Portable fallback for CPUs without AVX2+FMA: one (row, vector) dot product at a time, in
// a fixed order, so it is batch-invariant too.
void GemvRowsInt8Portable(const int8_t* w, const float* scales, int64_t n0, int64_t n1, int64_t K,
                         const float* x, int64_t B, float* y, int64_t ldy, bool accumulate) {
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* wr = w + n * K;
    for (int64_t b = 0; b < B; ++b) {
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += static_cast<float>(wr[k]) * x[b * K + k];
      float& out = y[b * ldy + n];
      out = accumulate ? out + s * scales[n] : s * scales[n];
    }
  }
}

namespace {

// ---- AVX2 + FMA: register tiles of R weight rows x V vectors ----
// Every (row, vector) product is computed the same way whatever R, V and B are: one 8-lane
// FMA accumulator over k in steps of 8, a fixed reduction tree, then the scalar tail in order.
// So a vector's result does not depend on the tile it falls in, on which vectors share the
// call, or on how the rows are split between threads.
#define SMOLSERVE_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline

SMOLSERVE_AVX2 float SumAvx2(__m256 v) {
  alignas(32) float a[8];
  _mm256_store_ps(a, v);
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// y[b * ldy + n + r] (=, or +=) row (n + r) . x[b] for r < R, b < V. With kAhead > 0, the
// rows [n + kAhead * R, n + (kAhead + 1) * R) of a later tile are prefetched alongside: short
// rows read side by side defeat the hardware prefetcher, and the loads wait on memory.
template <int R, int V, int kAhead = 0>
SMOLSERVE_AVX2 void TileAvx2(const float* w, int64_t n, int64_t K, const float* x, float* y,
                             int64_t ldy, bool accumulate) {
  const int64_t kv = K & ~int64_t{7};
  __m256 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int b = 0; b < V; ++b) acc[r][b] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kv; k += 8) {
    __m256 xv[V];
#pragma GCC unroll 3
    for (int b = 0; b < V; ++b) xv[b] = _mm256_loadu_ps(x + b * K + k);
    if (kAhead > 0 && (k & 15) == 0) {  // one prefetch per 64-byte line
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (n + kAhead * R + r) * K + k),
                     _MM_HINT_T0);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + (n + r) * K + k);
#pragma GCC unroll 3
      for (int b = 0; b < V; ++b) acc[r][b] = _mm256_fmadd_ps(wv, xv[b], acc[r][b]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int b = 0; b < V; ++b) {
      float s = SumAvx2(acc[r][b]);
      for (int64_t k = kv; k < K; ++k) s += w[(n + r) * K + k] * x[b * K + k];
      float& out = y[b * ldy + n + r];
      out = accumulate ? out + s : s;
    }
  }
}

// Rows [n, n + R) against vectors [0, V) for V <= 3.
template <int R, int kAhead = 0>
SMOLSERVE_AVX2 void TileRowsAvx2(const float* w, int64_t n, int64_t K, const float* x, int64_t V,
                                 float* y, int64_t ldy, bool accumulate) {
  switch (V) {
    case 1: TileAvx2<R, 1, kAhead>(w, n, K, x, y, ldy, accumulate); break;
    case 2: TileAvx2<R, 2, kAhead>(w, n, K, x, y, ldy, accumulate); break;
    default: TileAvx2<R, 3, kAhead>(w, n, K, x, y, ldy, accumulate); break;
  }
}

// The next group of vectors out of `remaining`: 3, except that 4 goes as 2 + 2 (a group of one
// vector would use a tile's 4 weight loads for only 4 FMAs).
inline int64_t VectorGroup(int64_t remaining) {
  return remaining == 4 ? 2 : std::min<int64_t>(3, remaining);
}

// Cache blocking: a block of weight rows (about 128 KiB) stays in L2 while blocks of vectors
// (about 96 KiB) pass; within them a tile of 4 rows stays in L1 while groups of 3 vectors
// pass. One vector alone (a single stream's decode step) streams tiles of 4 rows, prefetching
// 16 rows ahead.
__attribute__((target("avx2,fma"))) void GemvRowsAvx2(const float* w, int64_t n0, int64_t n1,
                                                      int64_t K, const float* x, int64_t B,
                                                      float* y, int64_t ldy, bool accumulate) {
  if (B == 1) {
    int64_t n = n0;
    for (; n + 20 <= n1; n += 4) TileAvx2<4, 1, 4>(w, n, K, x, y, ldy, accumulate);
    for (; n + 4 <= n1; n += 4) TileAvx2<4, 1>(w, n, K, x, y, ldy, accumulate);
    for (; n < n1; ++n) TileAvx2<1, 1>(w, n, K, x, y, ldy, accumulate);
    return;
  }
  const int64_t row_block = std::max<int64_t>(4, (128 << 10) / (K * 4) / 4 * 4);
  const int64_t vec_block = std::max<int64_t>(3, (96 << 10) / (K * 4) / 3 * 3);
  for (int64_t nb = n0; nb < n1; nb += row_block) {
    const int64_t ne = std::min(n1, nb + row_block);
    for (int64_t bb = 0; bb < B; bb += vec_block) {
      const int64_t be = std::min(B, bb + vec_block);
      int64_t n = nb;
      for (; n + 4 <= ne; n += 4) {
        for (int64_t b = bb; b < be;) {
          const int64_t v = VectorGroup(be - b);
          // The first group fetches the next tile's rows while this tile's come from memory.
          if (b == 0 && n + 8 <= n1) {
            TileRowsAvx2<4, 1>(w, n, K, x + b * K, v, y + b * ldy, ldy, accumulate);
          } else {
            TileRowsAvx2<4>(w, n, K, x + b * K, v, y + b * ldy, ldy, accumulate);
          }
          b += v;
        }
      }
      for (; n < ne; ++n) {
        for (int64_t b = bb; b < be;) {
          const int64_t v = VectorGroup(be - b);
          TileRowsAvx2<1>(w, n, K, x + b * K, v, y + b * ldy, ldy, accumulate);
          b += v;
        }
      }
    }
  }
}

// int8 rows one at a time against groups of up to 4 vectors: 16 weights per step widened with
// vpmovsxbd + vcvtdq2ps, two accumulators per vector, then the fixed reduction. In the engine
// this decoded faster than the register tiles above (one stream and 16 streams alike): the
// rows stream in order, which the hardware prefetcher follows best.
template <int B>
struct RowsInt8Avx2 {
  static SMOLSERVE_AVX2 void Run(const int8_t* w, const float* scales, int64_t n0, int64_t n1,
                                 int64_t K, const float* x, float* y, int64_t ldy,
                                 bool accumulate) {
    const int64_t kv = K / 16 * 16;
    for (int64_t n = n0; n < n1; ++n) {
      const int8_t* wr = w + n * K;
      __m256 acc[B][2];
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps();
      for (int64_t k = 0; k < kv; k += 16) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + k));
        const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q)));
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) {
          acc[b][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + b * K + k), acc[b][0]);
          acc[b][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + b * K + k + 8), acc[b][1]);
        }
      }
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) {
        alignas(32) float a[8];
        _mm256_store_ps(a, _mm256_add_ps(acc[b][0], acc[b][1]));
        float s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        for (int64_t k = kv; k < K; ++k) s += static_cast<float>(wr[k]) * x[b * K + k];
        s *= scales[n];
        float& out = y[b * ldy + n];
        out = accumulate ? out + s : s;
      }
    }
  }
};

__attribute__((target("avx2,fma"))) void GemvRowsInt8Avx2(const int8_t* w, const float* scales,
                                                          int64_t n0, int64_t n1, int64_t K,
                                                          const float* x, int64_t B, float* y,
                                                          int64_t ldy, bool accumulate) {
  // GemvBlocks' loop, here so that the AVX2 rows inline into an AVX2 function.
  constexpr int64_t kBlock = 16;
  for (int64_t nb = n0; nb < n1; nb += kBlock) {
    const int64_t ne = std::min(n1, nb + kBlock);
    for (int64_t b0 = 0; b0 < B; b0 += 4) {
      const float* xb = x + b0 * K;
      float* yb = y + b0 * ldy;
      switch (std::min<int64_t>(4, B - b0)) {
        case 1: RowsInt8Avx2<1>::Run(w, scales, nb, ne, K, xb, yb, ldy, accumulate); break;
        case 2: RowsInt8Avx2<2>::Run(w, scales, nb, ne, K, xb, yb, ldy, accumulate); break;
        case 3: RowsInt8Avx2<3>::Run(w, scales, nb, ne, K, xb, yb, ldy, accumulate); break;
        default: RowsInt8Avx2<4>::Run(w, scales, nb, ne, K, xb, yb, ldy, accumulate); break;
      }
    }
  }
}

const bool kHasAvx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

// ---- AVX-512: register tiles of R weight rows x B vectors, one 16-lane accumulator each
// (k in steps of 16, then a fixed reduction tree and the same scalar tail), so every
// (row, vector) result is computed identically whatever R and B are. ----
typedef float V16 __attribute__((vector_size(64)));
typedef float V16U __attribute__((vector_size(64), aligned(4), may_alias));

template <int R, int B>
inline __attribute__((always_inline)) void Tile16(const float* w, int64_t n, int64_t K,
                                                  const float* x, float* y, int64_t ldy,
                                                  bool accumulate) {
  const int64_t kv = K / 16 * 16;
  V16 acc[R][B];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) acc[r][b] = V16{};
  }
  for (int64_t k = 0; k < kv; k += 16) {
    V16 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wv[r] = *reinterpret_cast<const V16U*>(w + (n + r) * K + k);
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
      const V16 xv = *reinterpret_cast<const V16U*>(x + b * K + k);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][b] += wv[r] * xv;
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
      const V16 a = acc[r][b];
      const V8 h = V8{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]} +
                   V8{a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]};
      float s = Sum(h);
      const float* wr = w + (n + r) * K;
      for (int64_t k = kv; k < K; ++k) s += wr[k] * x[b * K + k];
      float& out = y[b * ldy + n + r];
      out = accumulate ? out + s : s;
    }
  }
}

template <int B>
struct RowsV16 {
  static inline __attribute__((always_inline)) void Run(const float* w, int64_t n0, int64_t n1,
                                                        int64_t K, const float* x, float* y,
                                                        int64_t ldy, bool accumulate) {
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) Tile16<4, B>(w, n, K, x, y, ldy, accumulate);
    for (; n < n1; ++n) Tile16<1, B>(w, n, K, x, y, ldy, accumulate);
  }
};

__attribute__((target("avx512f,avx512vl,avx2,fma"))) void GemvRowsV16(
    const float* w, int64_t n0, int64_t n1, int64_t K, const float* x, int64_t B, float* y,
    int64_t ldy, bool accumulate) {
  GemvBlocks<RowsV16>(w, n0, n1, K, x, B, y, ldy, accumulate);
}

const bool kHasAvx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");

}  // namespace

void GemvRows(const float* w, int64_t n0, int64_t n1, int64_t K, const float* x, int64_t B,
              float* y, int64_t ldy, bool accumulate) {
  if (kHasAvx512) {
    GemvRowsV16(w, n0, n1, K, x, B, y, ldy, accumulate);
  } else if (kHasAvx2Fma) {
    GemvRowsAvx2(w, n0, n1, K, x, B, y, ldy, accumulate);
  } else {
    GemvRowsV8(w, n0, n1, K, x, B, y, ldy, accumulate);
  }
}

void GemvRowsPortable(const float* w, int64_t n0, int64_t n1, int64_t K, const float* x,
                      int64_t B, float* y, int64_t ldy, bool accumulate) {
  GemvRowsV8(w, n0, n1, K, x, B, y, ldy, accumulate);
}

void GemvRowsInt8(const int8_t* w, const float* scales, int64_t n0, int64_t n1, int64_t K,
                  const float* x, int64_t B, float* y, int64_t ldy, bool accumulate) {
  if (kHasAvx2Fma) {
    GemvRowsInt8Avx2(w, scales, n0, n1, K, x, B, y, ldy, accumulate);
  } else {
    GemvRowsInt8Portable(w, scales, n0, n1, K, x, B, y, ldy, accumulate);
  }
}

__attribute__((target_clones("avx2", "default"))) void AttendOneHead(
    const float* q, const float* k, const float* v, const bool* valid, int64_t T, int64_t hd,
    float scale, float* scores, float* out) {
  const int64_t hd8 = hd & ~int64_t{7};
  float mx = -std::numeric_limits<float>::infinity();
  // Scores of 4 keys at a time: 4 independent accumulation chains instead of one (each key's
  // arithmetic is the same as alone, so results do not depend on the blocking).
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) {
    const float* k0 = k + t * hd;
    V8 a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd8; d += 8) {
      const V8 qd = Load(q + d);
      a0 += qd * Load(k0 + d);
      a1 += qd * Load(k0 + hd + d);
      a2 += qd * Load(k0 + 2 * hd + d);
      a3 += qd * Load(k0 + 3 * hd + d);
    }
    const float sums[4] = {Sum(a0), Sum(a1), Sum(a2), Sum(a3)};
    for (int j = 0; j < 4; ++j) {
      if (!valid[t + j]) continue;
      float s = sums[j];
      for (int64_t d = hd8; d < hd; ++d) s += q[d] * k0[j * hd + d];
      s *= scale;
      scores[t + j] = s;
      mx = std::max(mx, s);
    }
  }
  for (; t < T; ++t) {
    if (!valid[t]) continue;
    const float* kt = k + t * hd;
    V8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t d = 0; d < hd8; d += 8) acc += Load(q + d) * Load(kt + d);
    float s = Sum(acc);
    for (int64_t d = hd8; d < hd; ++d) s += q[d] * kt[d];
    s *= scale;
    scores[t] = s;
    mx = std::max(mx, s);
  }
  float sum = 0.0f;
  for (int64_t t = 0; t < T; ++t) {
    if (valid[t]) {
      const float e = std::exp(scores[t] - mx);
      scores[t] = e;
      sum += e;
    } else {
      scores[t] = 0.0f;
    }
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + hd, 0.0f);
  if (hd == 64) {  // every SmolVLM2 size: accumulators stay in registers
    V8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (int64_t t = 0; t < T; ++t) {
      const float p = scores[t] * inv;
      if (p == 0.0f) continue;
      const V8 pv = {p, p, p, p, p, p, p, p};
      const float* vt = v + t * 64;
      a0 += pv * Load(vt);
      a1 += pv * Load(vt + 8);
      a2 += pv * Load(vt + 16);
      a3 += pv * Load(vt + 24);
      a4 += pv * Load(vt + 32);
      a5 += pv * Load(vt + 40);
      a6 += pv * Load(vt + 48);
      a7 += pv * Load(vt + 56);
    }
    Store(out, a0);
    Store(out + 8, a1);
    Store(out + 16, a2);
    Store(out + 24, a3);
    Store(out + 32, a4);
    Store(out + 40, a5);
    Store(out + 48, a6);
    Store(out + 56, a7);
    return;
  }
  for (int64_t t = 0; t < T; ++t) {
    const float p = scores[t] * inv;
    if (p == 0.0f) continue;
    const V8 pv = {p, p, p, p, p, p, p, p};
    const float* vt = v + t * hd;
    for (int64_t d = 0; d < hd8; d += 8) Store(out + d, Load(out + d) + pv * Load(vt + d));
    for (int64_t d = hd8; d < hd; ++d) out[d] += p * vt[d];
  }
}

}  // namespace smolserve::decoder::internal
