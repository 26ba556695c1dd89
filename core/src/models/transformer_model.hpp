// What every reference architecture shares: the HF config, dtype and device, the description for
// targeting (walking the module tree), the list of linear layers, and whole-model forward built
// from embed / run_block / head.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "qplug/sdk/model.hpp"

namespace qplug {
namespace models {

// A ScalingGroup with names relative to its block ("input_layernorm", "self_attn.q_proj").
struct BlockScalingGroup {
  std::string prev_op;
  std::vector<std::string> linears;
  std::string inspect;
};

// Architecture facts a description needs beyond the module tree itself.
struct ArchitectureFacts {
  std::vector<TiedWeight> declared_tied;  // from tie_word_embeddings
  std::string output_embedding;           // "lm_head"
  std::string block_container;            // "model.layers"
  // Linears fused by serving engines, relative to a block, each with the fused name vLLM uses:
  // {"self_attn.qkv_proj", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}}.
  std::vector<std::pair<std::string, std::vector<std::string>>> fused_in_block;
  std::vector<std::string> keep_in_fp32;
  // AWQ's scaling groups of every block (AutoAWQ's get_layers_for_scaling), in search order.
  std::vector<BlockScalingGroup> scaling_in_block;
  std::string base_model_prefix = "model";
  std::vector<std::string> ignore_on_load;
};

class TransformerModel : public Model {
 public:
  TransformerModel(Value hf_config, DType dtype, std::string device);

  torch::nn::Module& root() override { return *root_; }
  const Value& hf_config() const override { return hf_config_; }
  DType dtype() const override { return dtype_; }
  std::string device() const override { return device_; }
  void to_device(const std::string& device) override;
  // Records where the tensors now are (the loader fills a meta skeleton with CPU tensors).
  void set_device(std::string device) { device_ = std::move(device); }

  ModelDescription describe() const override;
  std::vector<NamedLinear> linear_layers() override;
  at::Tensor forward(const at::Tensor& input_ids) override;
  std::string block_name(int64_t index) const override;
  // Runs a linear of the block; architectures add their attention and MLP sub-modules.
  at::Tensor run_block_module(int64_t index, const std::string& module,
                              const at::Tensor& input) override;
  void divide_output_channels(const std::string& op, const at::Tensor& scales) override;

  virtual ArchitectureFacts facts() const = 0;
  // Makes tied tensors the same tensor again (after a load replaced one of them).
  virtual void tie_weights() {}

 protected:
  Value& mutable_hf_config() override { return hf_config_; }

  std::shared_ptr<torch::nn::Module> root_;
  Value hf_config_;
  DType dtype_;
  std::string device_;
};

// "torch::nn::ModuleList" -> "ModuleList"; our own modules already carry HF's class names.
std::string module_type_name(const torch::nn::Module& module);

}  // namespace models
}  // namespace qplug
