#include "services/decoder/core/decoder_model.h"

#include <gtest/gtest.h>

#include "services/decoder/core/golden_case.h"

namespace smolserve::decoder {
namespace {

TEST(DecoderOptionsFromFlagsTest, WeightsFollowTheDtypeUnlessInt8) {
  auto o = DecoderOptionsFromFlags("f32", "");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->dtype, at::kFloat);
  EXPECT_FALSE(o->int8_weights);
  EXPECT_EQ(WeightsName(*o), "f32");

  o = DecoderOptionsFromFlags("bf16", "bf16");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->dtype, at::kBFloat16);
  EXPECT_EQ(WeightsName(*o), "bf16");

  // int8 computes in float32, also when the dtype is chosen per CPU.
  for (const char* dtype : {"auto", "f32"}) {
    o = DecoderOptionsFromFlags(dtype, "int8");
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->dtype, at::kFloat);
    EXPECT_TRUE(o->int8_weights);
    EXPECT_EQ(WeightsName(*o), "int8");
  }
}

TEST(DecoderOptionsFromFlagsTest, RefusesOtherValuesAndCombinations) {
  for (auto [dtype, weights] : std::vector<std::pair<const char*, const char*>>{
           {"bf16", "int8"}, {"f32", "bf16"}, {"bf16", "f32"}, {"f32", "int4"}, {"f16", ""}}) {
    EXPECT_EQ(DecoderOptionsFromFlags(dtype, weights).status().code(),
              absl::StatusCode::kInvalidArgument)
        << dtype << " / " << weights;
  }
}

TEST(LoadDecoderModelTest, Int8WeightsLoadFromTheOrdinaryCheckpoint) {
  auto o = DecoderOptionsFromFlags("f32", "int8");
  ASSERT_TRUE(o.ok());
  auto dm = LoadDecoderModel(testing::kTinyModelDir, *o);
  ASSERT_TRUE(dm.ok()) << dm.status();
  EXPECT_TRUE((*dm)->model->options().int8_weights);
  EXPECT_TRUE((*dm)->model->weights().layers[0].gate_up_proj_int8.defined());
}

}  // namespace
}  // namespace smolserve::decoder
