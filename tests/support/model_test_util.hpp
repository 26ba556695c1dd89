// Helpers for tests that build, run, save and load real models: small configs of every
// architecture, random weights, every tensor of a model by name, and file comparisons.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "qplug/core/models.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/model.hpp"
#include "qplug/sdk/value.hpp"
#include "tiny_models.hpp"

namespace qplug::testing {

// ---- configs ---------------------------------------------------------------------------------

// A Llama-family config: llama (tied or not), mistral (sliding_window), qwen2. Hidden 32 with
// head_dim 16, so rotary embeddings have 8 frequencies (enough to reach every llama3 band).
inline Value llama_family_config(const std::string& model_type, int64_t layers = 2,
                                 bool tied = false) {
  Value c = Value::map();
  c.set("model_type", model_type);
  c.set("vocab_size", 48);
  c.set("hidden_size", 32);
  c.set("intermediate_size", 40);
  c.set("num_hidden_layers", layers);
  c.set("num_attention_heads", 4);
  c.set("num_key_value_heads", 2);
  c.set("head_dim", 16);
  c.set("max_position_embeddings", 128);
  c.set("rms_norm_eps", 1e-5);
  c.set("rope_theta", 10000.0);
  c.set("tie_word_embeddings", tied);
  c.set("torch_dtype", "float32");
  return c;
}

inline Value mistral_config(int64_t window, int64_t layers = 2) {
  Value c = llama_family_config("mistral", layers);
  c.set("sliding_window", window);
  return c;
}

inline Value gpt2_config(int64_t layers = 2) {
  Value c = Value::map();
  c.set("model_type", "gpt2");
  c.set("vocab_size", 48);
  c.set("n_positions", 32);
  c.set("n_embd", 32);
  c.set("n_layer", layers);
  c.set("n_head", 4);
  c.set("layer_norm_epsilon", 1e-5);
  c.set("activation_function", "gelu_new");
  c.set("torch_dtype", "float32");
  return c;
}

// word_dim != hidden gives project_in / project_out (opt-350m); norm_before false is opt-350m's
// post-norm blocks without a final layer norm.
inline Value opt_config(int64_t layers = 2, int64_t word_dim = 32, bool norm_before = true) {
  Value c = Value::map();
  c.set("model_type", "opt");
  c.set("vocab_size", 48);
  c.set("max_position_embeddings", 32);
  c.set("hidden_size", 32);
  c.set("ffn_dim", 64);
  c.set("num_hidden_layers", layers);
  c.set("num_attention_heads", 4);
  c.set("word_embed_proj_dim", word_dim);
  c.set("do_layer_norm_before", norm_before);
  c.set("activation_function", "relu");
  c.set("torch_dtype", "float32");
  return c;
}

inline Value with_dtype(Value config, const std::string& torch_dtype) {
  config.set("torch_dtype", torch_dtype);
  return config;
}

// One small config of every architecture variant, by a name usable in test names.
inline std::vector<std::pair<std::string, Value>> every_architecture() {
  Value rope_llama3 = llama_family_config("llama");
  Value scaling = Value::map();
  scaling.set("rope_type", "llama3");
  scaling.set("factor", 8.0);
  scaling.set("low_freq_factor", 1.0);
  scaling.set("high_freq_factor", 4.0);
  scaling.set("original_max_position_embeddings", 64);
  rope_llama3.set("rope_scaling", scaling);
  return {
      {"llama_untied", llama_family_config("llama")},
      {"llama_tied", llama_family_config("llama", 2, true)},
      {"llama_rope_llama3", rope_llama3},
      {"mistral", mistral_config(4)},
      {"qwen2", llama_family_config("qwen2")},
      {"gpt2", gpt2_config()},
      {"opt", opt_config()},
      {"opt_projected_postnorm", opt_config(2, 24, false)},
  };
}

// ---- models ----------------------------------------------------------------------------------

// Built on the CPU with deterministic random weights. A larger std than transformers' 0.02 makes
// attention and positions matter enough for dependence checks to see them.
inline std::unique_ptr<Model> random_model(const Value& config, uint64_t seed = 1,
                                           double std = 0.02) {
  ModelBuildOptions options;
  options.device = "cpu";
  auto model = build_model(config, options);
  init_random_weights(*model, seed, std);
  return model;
}

// Every tensor the model holds, by full name: each linear's kernel tensors and every other
// module's own tensors (which torch sees as parameters). A tied head appears under both names.
inline std::map<std::string, at::Tensor> model_tensors(Model& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model.root().named_parameters(/*recurse=*/true))
    out[item.key()] = item.value();
  for (const NamedLinear& linear : model.linear_layers())
    for (const auto& [suffix, tensor] : linear.layer->kernel().tensors())
      out[linear.name + "." + suffix] = tensor;
  return out;
}

inline at::Tensor random_ids(int64_t vocab, int64_t batch, int64_t seq, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  return at::randint(vocab, {batch, seq}, generator, at::TensorOptions().dtype(at::kLong));
}

inline at::Tensor logits_of(Model& model, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  return model.forward(ids);
}

// ---- files -----------------------------------------------------------------------------------

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// File names in a folder, sorted.
inline std::vector<std::string> folder_entries(const std::filesystem::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace qplug::testing
