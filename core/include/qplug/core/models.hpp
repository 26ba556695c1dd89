// The reference architectures, built from a Hugging Face config.json: llama, mistral, qwen2 (the
// Llama family), gpt2 and opt. Each is a torch::nn::Module tree of qplug::nn::Linear layers with
// Hugging Face's module and parameter names, so state dicts match HF checkpoints key for key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/model.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

struct ModelBuildOptions {
  // The dtype of the floating-point weights; nullopt = config.json's torch_dtype (float32 if
  // absent).
  std::optional<DType> dtype;
  // "meta" builds a skeleton without storage (for planning and streaming loads).
  std::string device = "cpu";
};

// Builds the architecture config.json's model_type names, weights uninitialised.
// Throws ConfigError naming the key for a missing or invalid config key, and UnsupportedError for
// an unknown model_type (listing the supported ones).
std::unique_ptr<Model> build_model(const Value& hf_config, const ModelBuildOptions& options = {});

std::vector<std::string> supported_model_types();

// Fills a model built on a real device with deterministic random weights: normal(0, std) for
// linears and embeddings, ones for norm weights, zeros for biases (as transformers initialises
// them). For synthetic checkpoints in tests, benchmarks and `qplug demo`.
void init_random_weights(Model& model, uint64_t seed, double std = 0.02);

}  // namespace qplug
