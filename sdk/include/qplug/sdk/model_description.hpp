// A LibTorch-free description of a model's module tree: names, types, parameter shapes and the
// architecture facts that targeting needs (tied weights, output embedding, blocks, fused groups).
// It is built from a real model (Model::describe) or, for `qplug inspect`, from a skeleton on the
// meta device, so core targeting never touches weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qplug/sdk/dtype.hpp"

namespace qplug {

struct ParamInfo {
  std::string name;  // local name inside its module: "weight", "bias", "weight.absmax"
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  int64_t numel() const;
  int64_t bytes() const { return numel() * dtype_size(dtype); }
};

struct ModuleInfo {
  std::string name;  // dotted path from the root: "model.layers.0.self_attn.q_proj"
  std::string type;  // class name as Hugging Face spells it: "Linear", "Embedding", "LlamaRMSNorm"
  std::vector<ParamInfo> params;  // this module's own tensors, not its children's
  bool is_linear = false;         // a qplug::nn::Linear (the only kind a quantizer converts)
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool has_bias = false;
  std::string kernel;        // the linear's current kernel ("dense", "bnb_nf4", ...)
  DType dtype = DType::F32;  // the dtype of its floating-point weights, as loaded

  int64_t bytes() const;
  // The last dotted component: "q_proj".
  std::string leaf() const;
};

// A parameter that is the same tensor as another (lm_head.weight -> model.embed_tokens.weight).
struct TiedWeight {
  std::string target;  // the parameter that is not stored separately
  std::string source;  // the one it shares storage with
};

// Linears that serving engines fuse into one matrix and that must therefore be quantized alike.
struct FusedGroup {
  std::string name;                  // "model.layers.0.self_attn.qkv_proj"
  std::vector<std::string> members;  // full module names
};

// AWQ's scaling group (AutoAWQ's get_layers_for_scaling): linears that read the output of one op,
// so per-input-channel scales can be folded into that op, and the module whose output measures
// how well a choice of scales preserves the block. Declared by the architecture, full names.
struct ScalingGroup {
  std::string prev_op;               // "model.layers.0.input_layernorm" (a norm or a linear)
  std::vector<std::string> linears;  // "model.layers.0.self_attn.q_proj", ... (same input)
  std::string inspect;               // "model.layers.0.self_attn", or the single linear itself
};

struct ModelDescription {
  std::string model_type;           // config.json's model_type: "llama"
  std::vector<ModuleInfo> modules;  // every module but the root, in definition order
  // Full parameter names in registration order, tied duplicates left out (named_parameters()).
  std::vector<std::string> parameter_order;
  std::vector<TiedWeight> tied_weights;  // declared by the architecture and detected by storage
  std::string output_embedding;          // module name of the LM head ("lm_head"); "" if none
  std::string block_container;           // "model.layers"
  int64_t num_blocks = 0;
  std::vector<FusedGroup> fused_groups;
  std::vector<std::string> keep_in_fp32_modules;  // the architecture's _keep_in_fp32_modules
  // transformers' base_model_prefix ("model", "transformer"): checkpoints saved from the bare
  // base model (GPT-2's own) name their tensors without it.
  std::string base_model_prefix;
  // Regexes (searched) for checkpoint tensors the architecture ignores when loading
  // (transformers' _keys_to_ignore_on_load_unexpected, e.g. GPT-2's old "attn.bias" buffers).
  std::vector<std::string> ignore_on_load;
  // SDK 1.1. Empty when the architecture declares none (AWQ then refuses it).
  std::vector<ScalingGroup> scaling_groups;

  const ModuleInfo* find(const std::string& name) const;
  int64_t total_bytes() const;
};

}  // namespace qplug
