// Llama checkpoints of any size without a model in memory, for tests of memory and scale.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug::testing {

// An untied float32 Llama config.
inline Value synthetic_llama_config(int64_t hidden, int64_t intermediate, int64_t layers,
                                    int64_t vocab) {
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", vocab);
  c.set("hidden_size", hidden);
  c.set("intermediate_size", intermediate);
  c.set("num_hidden_layers", layers);
  c.set("num_attention_heads", hidden / 64);
  c.set("num_key_value_heads", hidden / 64);
  c.set("max_position_embeddings", 2048);
  c.set("rms_norm_eps", 1e-5);
  c.set("tie_word_embeddings", false);
  c.set("torch_dtype", "float32");
  return c;
}

// Writes `config`'s checkpoint (config.json, model.safetensors) without building the model: names
// and shapes from a meta skeleton, small values from a cheap integer hash (not zeros, so no page
// could be shared or skipped). Returns the bytes of tensor data.
inline uint64_t write_synthetic_checkpoint(const std::filesystem::path& folder,
                                           const Value& config) {
  std::filesystem::create_directories(folder);
  ModelBuildOptions meta;
  meta.device = "meta";
  auto skeleton = build_model(config, meta);
  std::vector<std::vector<float>> buffers;
  std::vector<SafetensorsTensor> tensors;
  uint64_t total = 0;
  uint32_t state = 12345;
  for (const auto& e : expected_checkpoint_tensors(*skeleton)) {
    if (e.optional) continue;
    int64_t numel = 1;
    for (int64_t d : e.shape)
      numel *= d;
    buffers.emplace_back(static_cast<size_t>(numel));
    for (float& v : buffers.back()) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(static_cast<int32_t>(state >> 8) - (1 << 23)) * 1e-9f;
    }
    const uint64_t bytes = static_cast<uint64_t>(numel) * sizeof(float);
    tensors.push_back({e.name, DType::F32, e.shape, buffers.back().data(), bytes});
    total += bytes;
  }
  write_safetensors((folder / "model.safetensors").string(), std::move(tensors));
  std::ofstream(folder / "config.json") << config_json_text(config);
  return total;
}

}  // namespace qplug::testing
