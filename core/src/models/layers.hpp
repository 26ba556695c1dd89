// Building blocks of the reference architectures: modules that hold their tensors in an ordered
// list (so a checkpoint loader can replace a tensor on a meta skeleton by name), embeddings,
// norms and rotary position embeddings.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {
namespace models {

// A module whose own tensors can be swapped after construction. torch::nn::Module keeps
// registered parameters in a dict that only subclasses may write, so loading a real tensor into a
// meta skeleton goes through here; the tensors stay visible to torch as parameters.
class TensorHolder : public torch::nn::Module {
 public:
  explicit TensorHolder(std::string type_name) : torch::nn::Module(std::move(type_name)) {}
  const std::vector<std::pair<std::string, at::Tensor>>& own_tensors() const { return tensors_; }
  // Replaces a tensor (same name); the caller has checked shape and dtype.
  void set_tensor(const std::string& name, at::Tensor value);
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;

 protected:
  // Registers a tensor; returns its index for fast access in forward().
  size_t add_tensor(const std::string& name, at::Tensor value);
  const at::Tensor& tensor(size_t index) const { return tensors_[index].second; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
};

class EmbeddingImpl : public TensorHolder {
 public:
  // type_name: transformers' class ("OPTLearnedPositionalEmbedding" for OPT's positions).
  EmbeddingImpl(int64_t num_embeddings, int64_t dim, const at::TensorOptions& options,
                std::string type_name = "Embedding");
  at::Tensor forward(const at::Tensor& ids) const;
  const at::Tensor& weight() const { return tensor(0); }
};
TORCH_MODULE(Embedding);

// x * rsqrt(mean(x^2) + eps) * weight, computed in float32 (as transformers' LlamaRMSNorm).
class RMSNormImpl : public TensorHolder {
 public:
  RMSNormImpl(std::string type_name, int64_t dim, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class LayerNormImpl : public TensorHolder {
 public:
  LayerNormImpl(int64_t dim, double eps, bool bias, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  int64_t dim_;
  double eps_;
  bool bias_;
};
TORCH_MODULE(LayerNorm);

// Rotary position embeddings as transformers computes them (rotate_half convention), with the
// "default", "linear" and "llama3" rope_scaling types.
class RotaryEmbedding {
 public:
  RotaryEmbedding() = default;
  // rope_scaling: config.json's object (or null).
  RotaryEmbedding(int64_t head_dim, double theta, const Value& rope_scaling,
                  int64_t max_position_embeddings);
  // cos and sin [T, head_dim] in `dtype` for positions 0..T-1 (cached per T and dtype).
  std::pair<at::Tensor, at::Tensor> cos_sin(int64_t seq_len, at::ScalarType dtype,
                                            const at::Device& device);
  const at::Tensor& inv_freq() const { return inv_freq_; }

 private:
  at::Tensor inv_freq_;  // float32 [head_dim / 2]
  double attention_scaling_ = 1.0;
  at::Tensor cached_cos_, cached_sin_;
};

// q * cos + rotate_half(q) * sin, for q [B, heads, T, head_dim].
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The additive attention mask [T, T]: 0 where key j may be seen from query i (j <= i, and
// i - j < window when window > 0), the dtype's lowest value elsewhere.
at::Tensor causal_mask(int64_t seq_len, int64_t window, at::ScalarType dtype,
                       const at::Device& device);

// softmax(q k^T * scale + mask) v with q [B, H, T, D], k/v [B, Hkv, T, D]; kv heads repeated for
// grouped-query attention; softmax in float32 as transformers' eager attention does.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, double scale);

}  // namespace models
}  // namespace qplug
