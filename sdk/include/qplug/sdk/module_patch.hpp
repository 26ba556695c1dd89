// Whole-module replacements (transformers' MODULES_TO_PATCH_FOR_QUANTIZATION): when a
// pre-quantized checkpoint of one of the listed methods is loaded, every module of `module_type` is
// replaced on the meta skeleton, before weights load (e.g. fused MoE experts -> a list of
// per-expert MLPs whose linears can hold quantized kernels).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qplug/sdk/torch_fwd.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

struct ModulePatch {
  std::string module_type;                 // the type name a ModuleInfo reports
  std::vector<std::string> quant_methods;  // the methods it applies to
  // Builds the replacement from the original module and the model's config.json.
  std::function<std::shared_ptr<torch::nn::Module>(
      const std::shared_ptr<torch::nn::Module>& original, const Value& hf_config)>
      factory;
  std::string description;
};

}  // namespace qplug
