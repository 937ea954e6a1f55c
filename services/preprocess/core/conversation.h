// A chat conversation in the transformers chat format, as plain C++ types.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_CORE_CONVERSATION_H_
#define SMOLSERVE_SERVICES_PREPROCESS_CORE_CONVERSATION_H_

#include <string>
#include <vector>

namespace smolserve::preprocess {

// Where a media item's bytes come from.
struct MediaSource {
  enum class Kind {
    kPath,    // a file path (relative paths resolve against a base directory)
    kUrl,     // file:// and data: URLs are read locally; other schemes are refused
    kBase64,  // base64 text, optionally a "data:<mime>;base64," URL
    kBytes,   // raw bytes already in memory
    kNone,    // no bytes: the item is named by `id` alone (resolved from a media cache)
  };
  Kind kind = Kind::kPath;
  std::string value;  // path, URL, base64 text or raw bytes
  std::string mime_type;  // optional hint
  // Optional client-chosen id of the item: a server with a media cache keeps the item's
  // preprocessing and embeddings under it, so a later request may send the id alone.
  std::string id;
};

struct ContentItem {
  enum class Type { kText, kImage, kVideo };
  Type type = Type::kText;
  std::string text;    // kText
  MediaSource source;  // kImage / kVideo
};

struct Message {
  std::string role;  // "user", "assistant", "system"
  std::vector<ContentItem> content;
};

using Conversation = std::vector<Message>;

}  // namespace smolserve::preprocess

#endif  // SMOLSERVE_SERVICES_PREPROCESS_CORE_CONVERSATION_H_
