// Fast float32 GEMM for model code: row-major SGEMM through oneDNN (libdnnl2, which LibTorch
// itself links), whose AVX-512 kernels run about twice as fast on this project's CPUs as the
// OpenBLAS build that at::mm reaches (pinned to the Haswell kernels via OPENBLAS_CORETYPE).
// Results agree with at::addmm to float32 rounding (different summation order only).
//
// Threads: oneDNN follows the OpenMP thread count of the calling thread (what
// at::set_num_threads sets); inside an at::parallel_for region it runs single-threaded.
#ifndef SMOLSERVE_COMMON_MODEL_LINEAR_H_
#define SMOLSERVE_COMMON_MODEL_LINEAR_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace smolserve::model {

// C := alpha * op(A) * op(B) + beta * C, all row-major float32; op(A) is [m, k], op(B) is
// [k, n], C is [m, n]. Returns false (C untouched) if oneDNN reports an error.
bool Sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// y = x @ weight^T (+ bias), like at::linear: x [..., K], weight [N, K], bias [N] or
// undefined. CPU float32 goes through Sgemm (bias pre-filled, beta = 1, so the sum is
// bias + x.W^T as addmm computes it); every other case falls back to at::linear.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// Reduced-precision (bf16/fp16) products as current PyTorch computes them: float32
// accumulation, one rounding of the result. LibTorch 1.13 sends CPU bf16 GEMMs to oneDNN only
// on AVX-512 CPUs and otherwise accumulates in bf16 (errors ~20x the bf16 rounding on a
// 3072-long reduction); there these take the product in float32. float32 inputs: at::mm.
at::Tensor Mm(const at::Tensor& a, const at::Tensor& b);
void MmOut(at::Tensor& out, const at::Tensor& a, const at::Tensor& b);

}  // namespace smolserve::model

#endif  // SMOLSERVE_COMMON_MODEL_LINEAR_H_
