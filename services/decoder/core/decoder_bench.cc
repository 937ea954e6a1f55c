// Decoder throughput at the real SmolVLM2-256M text shapes (hidden 576, 30 layers, 9 heads /
// 3 KV heads of 64, MLP 1536, vocab 49280, untied lm_head) with random weights.
//
//   bazel build //services/decoder/core:decoder_bench &&
//   bazel-bin/services/decoder/core/decoder_bench [--prompt=874] [--decode=64]
//       [--threads=2] [--repeats=3] [--dtype=f32|bf16] [--weights=int8] [--batch=1]
//       [--chunk=256]
//
// Prints one JSON object: prefill tokens/s for the prompt (one forward pass, KV cache filled)
// and decode tokens/s for `decode` greedy steps after it (per row), as the median of `repeats`
// timed rounds after one warm-up round, plus the best round (useful on a shared machine).
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/model/config.h"
#include "common/model/weights.h"
#include "services/decoder/core/batch_engine.h"
#include "services/decoder/core/logits_processor.h"
#include "services/decoder/core/text_model.h"

namespace smolserve::decoder {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Run(int argc, char** argv) {
  std::map<std::string, std::string> flags = {{"prompt", "874"}, {"decode", "64"},
                                              {"threads", "2"},  {"repeats", "3"},
                                              {"dtype", "f32"},  {"batch", "1"},
                                              {"chunk", "256"},
                                              {"streams", "0"}, {"prefill_chunk", "256"},
                                              {"weights", ""}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos || !flags.count(a.substr(2, eq - 2))) {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
    flags[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }
  const int64_t prompt = std::atoll(flags["prompt"].c_str());
  const int64_t decode = std::atoll(flags["decode"].c_str());
  const int threads = std::atoi(flags["threads"].c_str());
  const int repeats = std::max(1, std::atoi(flags["repeats"].c_str()));
  const int64_t batch = std::max<int64_t>(1, std::atoll(flags["batch"].c_str()));
  const bool bf16 = flags["dtype"] == "bf16";
  if (prompt < 1 || decode < 1 || threads < 1) {
    std::fprintf(stderr, "prompt, decode and threads must be >= 1\n");
    return 2;
  }
  at::set_num_threads(threads);

  model::ModelConfig config;
  config.image_token_id = 49190;
  config.scale_factor = 4;
  config.vision.image_size = 512;
  config.vision.patch_size = 16;
  config.tie_word_embeddings = false;
  model::TextConfig& t = config.text;
  t.hidden_size = 576;
  t.intermediate_size = 1536;
  t.num_hidden_layers = 30;
  t.num_attention_heads = 9;
  t.num_key_value_heads = 3;
  t.head_dim = 64;
  t.vocab_size = 49280;
  t.rms_norm_eps = 1e-5;
  t.rope_theta = 100000;
  t.max_position_embeddings = 8192;

  // Random weights with O(1) activations.
  at::manual_seed(0);
  std::map<std::string, at::Tensor> w;
  const int64_t D = t.hidden_size, I = t.intermediate_size, hd = t.head_dim;
  auto lin = [](int64_t out, int64_t in) { return at::randn({out, in}) / std::sqrt(in); };
  w["model.text_model.embed_tokens.weight"] = at::randn({t.vocab_size, D});
  w["model.text_model.norm.weight"] = at::ones({D});
  w["lm_head.weight"] = lin(t.vocab_size, D);
  for (int64_t l = 0; l < t.num_hidden_layers; ++l) {
    const std::string p = "model.text_model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = at::ones({D});
    w[p + "post_attention_layernorm.weight"] = at::ones({D});
    w[p + "self_attn.q_proj.weight"] = lin(t.num_attention_heads * hd, D);
    w[p + "self_attn.k_proj.weight"] = lin(t.num_key_value_heads * hd, D);
    w[p + "self_attn.v_proj.weight"] = lin(t.num_key_value_heads * hd, D);
    w[p + "self_attn.o_proj.weight"] = lin(D, t.num_attention_heads * hd);
    w[p + "mlp.gate_proj.weight"] = lin(I, D);
    w[p + "mlp.up_proj.weight"] = lin(I, D);
    w[p + "mlp.down_proj.weight"] = lin(D, I);
  }
  auto store = model::WeightStore::FromTensors(std::move(w));
  TextModelOptions options;
  options.dtype = bf16 ? at::kBFloat16 : at::kFloat;
  options.prefill_query_chunk = std::max<int64_t>(1, std::atoll(flags["chunk"].c_str()));
  options.int8_weights = flags["weights"] == "int8";
  auto created = TextModel::Create(config, *store, options);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<TextModel> m = std::move(*created);
  if (auto st = store->CheckAllUsed(); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  store.reset();

  const int64_t streams = std::atoll(flags["streams"].c_str());
  if (streams > 0) {
    // Continuous-batching engine: `streams` sequences submitted at once (each its own random
    // prompt of `prompt` tokens, `decode` greedy tokens, EOS ignored). Reports the aggregate
    // decode rate while all of them are generating (from the last first token to the first
    // finish) and overall.
    BatchEngineOptions eo;
    eo.max_running = streams;
    eo.prefill_chunk_tokens = std::atoll(flags["prefill_chunk"].c_str());
    eo.thread_init = [threads] { at::set_num_threads(threads); };
    auto engine = BatchEngine::Create(*m, eo);
    if (!engine.ok()) {
      std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
      return 1;
    }
    for (int r = 0; r < repeats + 1; ++r) {
      std::mutex mu;
      std::condition_variable cv;
      int done = 0;
      std::vector<double> first(streams, 0), finish(streams, 0);
      std::vector<double> token_times;  // engine thread only
      token_times.reserve(streams * decode);
      const double t0 = Now();
      for (int64_t i = 0; i < streams; ++i) {
        GenerateRequest req;
        at::Tensor row = at::randint(3, 49152, {prompt}, at::TensorOptions().dtype(at::kLong));
        req.input_ids = {std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + prompt)};
        req.max_new_tokens = decode;
        req.ignore_eos = true;
        req.on_token = [&, i](int64_t, int64_t) {
          const double now = Now();
          token_times.push_back(now);
          if (first[i] == 0) first[i] = now;
          return StreamAction::kContinue;
        };
        SequenceCallbacks cb;
        cb.on_done = [&, i](absl::StatusOr<SequenceResult> res) {
          if (!res.ok()) std::fprintf(stderr, "%s\n", res.status().ToString().c_str());
          std::lock_guard<std::mutex> lock(mu);
          finish[i] = Now();
          ++done;
          cv.notify_all();
        };
        if (auto st = (*engine)->Submit(std::move(req), std::move(cb)); !st.ok()) {
          std::fprintf(stderr, "%s\n", st.ToString().c_str());
          return 1;
        }
      }
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done == streams; });
      const double t1 = Now();
      const double all_started = *std::max_element(first.begin(), first.end());
      const double first_done = *std::min_element(finish.begin(), finish.end());
      if (r == 0) continue;  // warm-up
      const BatchEngineStats es = (*engine)->stats();
      std::fprintf(stderr, "engine: %ld decode steps, %.2f generating rows each, %ld prefill chunks, %.1f ms per pass, select %.2f ms/step\n",
                   es.decode_steps,
                   static_cast<double>(es.decode_rows) / std::max<int64_t>(1, es.decode_steps), es.prefill_chunks,
                   1e3 * es.step_seconds / std::max<int64_t>(1, es.decode_steps),
                   1e3 * es.select_seconds / std::max<int64_t>(1, es.decode_steps));
      int64_t in_window = 0;
      for (double t : token_times) in_window += t > all_started && t <= first_done;
      std::printf(
          "{\"mode\": \"engine\", \"weights\": \"%s\", \"streams\": %ld, \"threads\": %d, \"prompt_tokens\": %ld, "
          "\"new_tokens\": %ld, \"wall_s\": %.3f, \"output_tokens_per_s\": %.1f, "
          "\"steady_decode_tokens_per_s\": %.1f, \"last_first_token_s\": %.3f}\n",
          options.int8_weights ? "int8" : (bf16 ? "bf16" : "f32"), streams, threads, prompt, decode, t1 - t0, streams * decode / (t1 - t0),
          first_done > all_started ? in_window / (first_done - all_started) : 0.0,
          all_started - t0);
    }
    return 0;
  }

  const at::Tensor ids = at::randint(3, 49152, {batch, prompt}, at::TensorOptions().dtype(at::kLong));
  std::vector<double> prefill_s, decode_s;
  for (int r = 0; r < repeats + 1; ++r) {  // the first round warms up
    auto cache = m->NewCache(batch, prompt + decode);
    if (!cache.ok()) {
      std::fprintf(stderr, "%s\n", cache.status().ToString().c_str());
      return 1;
    }
    double t0 = Now();
    auto logits = m->Prefill(ids, at::Tensor(), at::Tensor(), *cache);
    const double t1 = Now();
    if (!logits.ok()) {
      std::fprintf(stderr, "%s\n", logits.status().ToString().c_str());
      return 1;
    }
    std::vector<int64_t> next(batch);
    const double t2 = Now();
    for (int64_t s = 0; s < decode; ++s) {
      const int64_t V = logits->size(1);
      for (int64_t b = 0; b < batch; ++b) {
        next[b] = Argmax(absl::Span<const float>(logits->data_ptr<float>() + b * V, V));
      }
      logits = m->DecodeStep(next, *cache);
      if (!logits.ok()) {
        std::fprintf(stderr, "%s\n", logits.status().ToString().c_str());
        return 1;
      }
    }
    const double t3 = Now();
    if (r > 0) {
      prefill_s.push_back(t1 - t0);
      decode_s.push_back(t3 - t2);
    }
  }
  const double ps = Median(prefill_s), ds = Median(decode_s);
  const double ps_best = *std::min_element(prefill_s.begin(), prefill_s.end());
  const double ds_best = *std::min_element(decode_s.begin(), decode_s.end());
  std::printf(
      "{\"model\": \"smolvlm2-256m-text (random weights)\", \"dtype\": \"%s\", \"weights\": \"%s\", \"threads\": %d, "
      "\"batch\": %ld, \"prefill_tokens\": %ld, \"prefill_seconds\": %.4f, "
      "\"prefill_tokens_per_s\": %.1f, \"decode_tokens\": %ld, \"decode_seconds\": %.4f, "
      "\"decode_tokens_per_s\": %.2f, \"decode_ms_per_token\": %.2f, \"repeats\": %d, "
      "\"best_prefill_tokens_per_s\": %.1f, \"best_decode_tokens_per_s\": %.2f}\n",
      bf16 ? "bf16" : "f32", options.int8_weights ? "int8" : (bf16 ? "bf16" : "f32"), threads, batch, prompt, ps, batch * prompt / ps, decode, ds,
      decode / ds, 1000 * ds / decode, repeats, batch * prompt / ps_best, decode / ds_best);
  return 0;
}

}  // namespace
}  // namespace smolserve::decoder

int main(int argc, char** argv) { return smolserve::decoder::Run(argc, argv); }
