// Builders of the reference architectures, one per file; registry.cpp maps model_type to them.
#pragma once

#include <memory>
#include <string>

#include "models/transformer_model.hpp"

namespace qplug {
namespace models {

// llama, mistral, qwen2.
std::unique_ptr<TransformerModel> build_llama_family(const Value& hf_config, DType dtype,
                                                     const std::string& device);
std::unique_ptr<TransformerModel> build_gpt2(const Value& hf_config, DType dtype,
                                             const std::string& device);
std::unique_ptr<TransformerModel> build_opt(const Value& hf_config, DType dtype,
                                            const std::string& device);

}  // namespace models
}  // namespace qplug
