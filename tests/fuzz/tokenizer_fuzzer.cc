// The SmolVLM tokenizer (models/SmolVLM-256M-Instruct/tokenizer.json) on arbitrary bytes:
// Encode (what every prompt goes through: arbitrary client text, invalid UTF-8 included),
// Decode and the IncrementalDecoder the decoder stage streams with, on the encoded ids and on
// arbitrary ids (negative, out of the vocabulary, special).
// Invariants (tokenizer.h): ids are known; incremental decoding equals Decode, with and
// without skip_special_tokens; Decode(Encode(x)) == x for valid UTF-8 x without the 21 bytes
// the vocabulary lacks; decoded text is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

smolserve::tokenizer::Tokenizer* tok = nullptr;

std::string Incremental(const std::vector<int32_t>& ids, bool skip) {
  smolserve::tokenizer::IncrementalDecoder dec(*tok, skip);
  std::string out;
  for (int32_t id : ids) out += dec.Add(id);
  out += dec.Flush();
  FUZZ_CHECK(!dec.has_pending(), "pending after Flush");
  return out;
}

void CheckDecoders(const std::vector<int32_t>& ids) {
  for (const bool skip : {false, true}) {
    const std::string full = tok->Decode(ids, skip);
    FUZZ_CHECK(smolserve::fuzz::IsValidUtf8(full), "Decode gave invalid UTF-8");
    FUZZ_CHECK(Incremental(ids, skip) == full, "incremental decode differs from Decode");
  }
}

// The 21 byte values whose byte-level characters the SmolVLM vocabulary lacks.
bool HasUnmappedByte(const std::string& s) {
  for (unsigned char c : s) {
    if (c == 0x04 || c == 0x06 || c == 0x13 || c == 0x14 || c == 0x16 || c == 0x1D ||
        c == 0xC0 || c == 0xC1 || c == 0xF1 || c == 0xF2 || c >= 0xF5) {
      return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  smolserve::fuzz::SetProgramPath((*argv)[0]);
  auto t = smolserve::tokenizer::Tokenizer::FromFile(
      smolserve::fuzz::DataPath("models/SmolVLM-256M-Instruct/tokenizer.json"));
  if (!t.ok()) smolserve::fuzz::Fail("loading the tokenizer", t.status().ToString());
  tok = t->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = tok->Encode(text);
  for (int32_t id : ids) FUZZ_CHECK(tok->IsKnownId(id), absl::StrCat("unknown id ", id));
  CheckDecoders(ids);
  if (smolserve::fuzz::IsValidUtf8(text) && !HasUnmappedByte(text)) {
    FUZZ_CHECK(tok->Decode(ids) == text, "Decode(Encode(x)) != x");
  }
  // The same bytes read as ids (4 bytes each): anything a decoder may be handed.
  std::vector<int32_t> raw(size / 4);
  for (size_t i = 0; i < raw.size(); ++i) {
    uint32_t v = data[4 * i] | (data[4 * i + 1] << 8) | (data[4 * i + 2] << 16) |
                 (static_cast<uint32_t>(data[4 * i + 3]) << 24);
    // Mostly ids near the vocabulary, sometimes anything.
    raw[i] = (v >> 31) ? static_cast<int32_t>(v) : static_cast<int32_t>(v % 49408);
  }
  CheckDecoders(raw);
  return 0;
}
