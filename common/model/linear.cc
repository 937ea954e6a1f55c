#include "common/model/linear.h"

#include <ATen/ATen.h>

#include <vector>

#include "common/runtime/cpu_features.h"

// oneDNN's C BLAS entry point (oneapi/dnnl/dnnl.h; Debian ships the library without the
// -dev headers, so the documented prototype is declared here). dnnl_dim_t is int64_t and
// dnnl_status_t is an enum whose success value is 0.
extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                          float* C, int64_t ldc);

namespace smolserve::model {

bool Sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0 || k <= 0) return false;
  return dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta,
                    c, ldc) == 0;
}

namespace {

// Whether LibTorch would accumulate this reduced-precision product in reduced precision.
bool NeedsFloatAccumulation(const at::Tensor& a) {
  const at::ScalarType t = a.scalar_type();
  return (t == at::kBFloat16 || t == at::kHalf) && a.device().is_cpu() &&
         !GetCpuFeatures().avx512_core;
}

}  // namespace

at::Tensor Mm(const at::Tensor& a, const at::Tensor& b) {
  if (!NeedsFloatAccumulation(a)) return at::mm(a, b);
  return at::mm(a.to(at::kFloat), b.to(at::kFloat)).to(a.scalar_type());
}

void MmOut(at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  if (!NeedsFloatAccumulation(a)) {
    at::mm_out(out, a, b);
    return;
  }
  out.copy_(at::mm(a.to(at::kFloat), b.to(at::kFloat)));
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (NeedsFloatAccumulation(x)) {
    const at::Tensor b = bias.defined() ? bias.to(at::kFloat) : at::Tensor();
    return Linear(x.to(at::kFloat), weight.to(at::kFloat), b).to(x.scalar_type());
  }
  const bool fast =
      x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && x.device().is_cpu() &&
      weight.device().is_cpu() && weight.dim() == 2 && x.dim() >= 1 &&
      x.size(-1) == weight.size(1) && x.numel() > 0 && weight.numel() > 0 &&
      (!bias.defined() || (bias.scalar_type() == at::kFloat && bias.device().is_cpu() &&
                           bias.dim() == 1 && bias.size(0) == weight.size(0)));
  if (!fast) return at::linear(x, weight, bias);
  const int64_t k = weight.size(1);
  const int64_t n = weight.size(0);
  const at::Tensor x2 = x.reshape({-1, k}).contiguous();
  const at::Tensor w = weight.contiguous();
  const int64_t m = x2.size(0);
  at::Tensor y;
  float beta = 0.0f;
  if (bias.defined()) {
    y = bias.reshape({1, n}).expand({m, n}).contiguous();
    beta = 1.0f;
  } else {
    y = at::empty({m, n}, x2.options());
  }
  if (!Sgemm(false, true, m, n, k, 1.0f, x2.data_ptr<float>(), k, w.data_ptr<float>(), k, beta,
             y.data_ptr<float>(), n)) {
    return at::linear(x, weight, bias);
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  return y.view(shape);
}

}  // namespace smolserve::model
