// The JSON request format shared by the CLI and the services' debugging paths:
//   {"messages": [...]}                     one conversation
//   {"conversations": [[...], [...]]}       a batch
// Messages are in the transformers chat format: {"role": "...", "content": [items]} with
// items {"type": "text", "text": ...}, {"type": "image", "path"|"url"|"base64": ...},
// {"type": "video", "path"|"url"|"base64": ...}; a plain string content is one text item.
// A media item may also carry "id" (a client-chosen name for the media cache of a server),
// with or without a source; with none, it names media sent in an earlier request.
// Optional "processor" overrides (see ProcessorOverrides) and "generation" parameters.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_REQUEST_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_REQUEST_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/generation/generation_params.h"
#include "services/preprocess/core/conversation.h"

namespace smolserve::preprocess {

// Per-request processor settings; unset fields keep the model folder's values.
struct ProcessorOverrides {
  std::optional<bool> do_image_splitting;
  std::optional<bool> do_resize;
  std::optional<int> longest_edge;    // "size": {"longest_edge": N}
  std::optional<int> max_image_size;  // "max_image_size": {"longest_edge": N}
  // "video": {"fps", "max_frames", "num_frames", "skip_secs"}
  std::optional<double> video_fps;
  std::optional<int> video_max_frames;
  std::optional<int> video_num_frames;
  std::optional<double> video_skip_secs;
  // "image_mode": "rgb" (default: images load as transformers' load_image does, EXIF
  // applied and converted to RGB) or "keep" (the file's mode is kept, as when PIL images
  // are handed to the processor directly: RGBA composited on white after resizing,
  // greyscale resized with NEAREST).
  std::optional<bool> keep_image_mode;
  // "chat_template": "auto" (default: the model folder's, or the video default when a
  // conversation holds a video) or "smolvlm" (the built-in template whatever the folder has).
  std::optional<std::string> chat_template;
};

struct PrepareRequest {
  std::vector<Conversation> conversations;
  // Whose request this is (the API key's tenant; "" without keys): media ids and cache entries
  // are this tenant's alone (media_key.h).
  std::string tenant;
  bool batched = false;  // came as "conversations"
  ProcessorOverrides processor;
  std::string generation_json;  // the raw "generation" object, "" when absent
};

// A chat: what to prepare and how to generate. Every transport builds one (the request-file
// JSON below, the gRPC ChatRequest, OpenAI's chat completions) for the chat pipeline.
struct ChatRequest {
  PrepareRequest prepare;  // conversations, processor overrides, tenant
  GenerationParams generation;
  // Conversation b samples with generation.seed + b (copies of one conversation asking for
  // several answers, as OpenAI's n).
  bool distinct_seeds = false;
};

// Parses and validates the request (structure, types, known keys; nesting depth bounded).
// INVALID_ARGUMENT with the JSON path of the problem (e.g. "conversations[1][0].content[2]: ...").
absl::StatusOr<PrepareRequest> ParsePrepareRequest(absl::string_view json);
// The same, with "generation" parsed (GenerationParamsFromJson; values are validated by the
// pipeline).
absl::StatusOr<ChatRequest> ParseChatRequest(absl::string_view json);

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_REQUEST_H_
