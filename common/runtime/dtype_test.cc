#include "common/runtime/dtype.h"

#include <gtest/gtest.h>

#include "common/runtime/cpu_features.h"

namespace smolserve {
namespace {

TEST(Dtype, ExplicitChoicesAreKeptEverywhere) {
  for (bool native : {false, true}) {
    for (DtypeStage s : {DtypeStage::kVision, DtypeStage::kDecoder}) {
      EXPECT_EQ(*ResolveDtype("f32", s, native), c10::ScalarType::Float);
      EXPECT_EQ(*ResolveDtype("bf16", s, native), c10::ScalarType::BFloat16);
    }
  }
}

TEST(Dtype, AutoIsBf16OnlyForVisionOnCpusWithNativeBf16) {
  EXPECT_EQ(*ResolveDtype("auto", DtypeStage::kVision, true), c10::ScalarType::BFloat16);
  EXPECT_EQ(*ResolveDtype("auto", DtypeStage::kVision, false), c10::ScalarType::Float);
  EXPECT_EQ(*ResolveDtype("auto", DtypeStage::kDecoder, true), c10::ScalarType::Float);
  EXPECT_EQ(*ResolveDtype("auto", DtypeStage::kDecoder, false), c10::ScalarType::Float);
  // This machine's own answer follows its CPU.
  EXPECT_EQ(*ResolveDtype("auto", DtypeStage::kVision),
            GetCpuFeatures().native_bf16() ? c10::ScalarType::BFloat16 : c10::ScalarType::Float);
}

TEST(Dtype, AnythingElseIsRefused) {
  for (const char* bad : {"", "fp32", "F32", "float16", "int8", "auto "}) {
    auto d = ResolveDtype(bad, DtypeStage::kDecoder, true);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(DtypeName(c10::ScalarType::BFloat16), "bf16");
  EXPECT_EQ(DtypeName(c10::ScalarType::Float), "f32");
}

}  // namespace
}  // namespace smolserve
