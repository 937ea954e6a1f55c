// Test helpers over the transformers fixtures in this folder.
#ifndef SMOLSERVE_TESTS_GOLDEN_GOLDEN_CASE_H_
#define SMOLSERVE_TESTS_GOLDEN_GOLDEN_CASE_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "services/preprocess/core/request.h"

namespace smolserve::golden {

inline constexpr char kGoldenDir[] = "tests/golden/";
inline constexpr char kTinyModel[] = "tests/golden/models/tiny-smolvlm2-256m-geometry";
inline constexpr char kTinyModelBf16[] = "tests/golden/models/tiny-smolvlm2-256m-geometry-bf16";

// Every case with a conversation (all but the model-only vision_partial_mask).
std::vector<std::string> ConversationCases();

nlohmann::json ReadCase(const std::string& name);

// The case's inputs as our request: processor overrides, image mode ("keep" for cases
// that handed PIL images to the processor) and video sampling arguments.
preprocess::PrepareRequest CaseRequest(const nlohmann::json& c);

}  // namespace smolserve::golden

#endif  // SMOLSERVE_TESTS_GOLDEN_GOLDEN_CASE_H_
