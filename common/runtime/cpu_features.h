// What the CPU running this process can do, from CPUID and the OS-enabled register state
// (XCR0), read once. Used to choose kernels and default dtypes: bf16 by default only where
// the CPU has native bf16 dot products, and reduced-precision GEMMs that LibTorch would
// otherwise accumulate in bf16 on CPUs without AVX-512.
#ifndef SMOLSERVE_COMMON_RUNTIME_CPU_FEATURES_H_
#define SMOLSERVE_COMMON_RUNTIME_CPU_FEATURES_H_

#include <string>

namespace smolserve {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512_core = false;  // AVX512 F + BW + VL + DQ, with ZMM state enabled by the OS
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;     // VEX-encoded VNNI (no AVX-512 needed)
  bool amx_bf16 = false;     // AMX tiles with bf16 (OS support for the tile state included)
  bool amx_int8 = false;

  // Native bf16 dot products: avx512_bf16 or AMX-BF16.
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  // "avx2 fma avx512_core avx512_bf16 ..." for logs and benchmark reports.
  std::string ToString() const;
};

const CpuFeatures& GetCpuFeatures();

}  // namespace smolserve

#endif  // SMOLSERVE_COMMON_RUNTIME_CPU_FEATURES_H_
