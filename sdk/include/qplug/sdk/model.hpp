// The model as plugins see it: a torch::nn::Module tree built from qplug::nn::Linear layers, its
// Hugging Face config, its description for targeting, and entry points to run it whole or block by
// block (what calibration needs). The architectures (llama, mistral, qwen2, gpt2, opt) live in
// core.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/model_description.hpp"
#include "qplug/sdk/torch_fwd.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {
namespace nn {
class LinearImpl;
}

// A linear layer with its full dotted name.
struct NamedLinear {
  std::string name;
  nn::LinearImpl* layer = nullptr;
};

class Model {
 public:
  virtual ~Model();

  virtual torch::nn::Module& root() = 0;
  // The parsed config.json. quantization_config is kept in sync by set_quantization().
  virtual const Value& hf_config() const = 0;
  const std::string& model_type() const;
  virtual DType dtype() const = 0;
  virtual std::string device() const = 0;  // "cpu", "meta", "cuda:0"
  // Moves every tensor (kernels keep their formats).
  virtual void to_device(const std::string& device) = 0;

  virtual ModelDescription describe() const = 0;
  // Every qplug::nn::Linear, in definition order.
  virtual std::vector<NamedLinear> linear_layers() = 0;
  nn::LinearImpl* find_linear(const std::string& name);

  // ---- running it ---------------------------------------------------------------------------
  // Token ids [batch, seq] (int64) -> logits [batch, seq, vocab] in float32.
  virtual at::Tensor forward(const at::Tensor& input_ids) = 0;
  // The pieces calibration runs block by block; positions are 0..seq-1 with a causal mask.
  virtual int64_t num_blocks() const = 0;
  virtual std::string block_name(int64_t index) const = 0;    // "model.layers.3"
  virtual at::Tensor embed(const at::Tensor& input_ids) = 0;  // [B,T] -> hidden [B,T,H]
  virtual at::Tensor run_block(int64_t index, const at::Tensor& hidden) = 0;
  virtual at::Tensor head(const at::Tensor& hidden) = 0;  // final norm + LM head -> logits

  // ---- quantization state (HfQuantizer's model.is_quantized / quantization_method) -----------
  bool is_quantized() const { return is_quantized_; }
  const std::string& quantization_method() const { return quantization_method_; }
  // The dtype before quantization (config._pre_quantization_dtype).
  DType pre_quantization_dtype() const { return pre_quantization_dtype_; }
  // Marks the model quantized and stores `config` as config.json's quantization_config.
  void set_quantization(const std::string& method, Value config);
  void clear_quantization();

  // ---- SDK 1.1 (AWQ's scale search), appended so that 1.0 plugins find the earlier virtual
  // functions where they were.
  // Runs one module of block `index` on its input: a ScalingGroup's `inspect` (an attention or
  // MLP sub-module, with the block's positions and mask, or a linear). Throws UnsupportedError
  // for a module the architecture cannot run alone.
  virtual at::Tensor run_block_module(int64_t index, const std::string& module,
                                      const at::Tensor& input) = 0;
  // Divides the output channels of `op` (a ScalingGroup's prev_op: a norm's weight and bias, or
  // the last scales.numel() output rows of a dense linear) by `scales`, so the ops that read its
  // output can take the scales into their weights and the model computes the same function.
  virtual void divide_output_channels(const std::string& op, const at::Tensor& scales) = 0;

 protected:
  virtual Value& mutable_hf_config() = 0;

 private:
  bool is_quantized_ = false;
  std::string quantization_method_;
  DType pre_quantization_dtype_ = DType::F32;
};

}  // namespace qplug
