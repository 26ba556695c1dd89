#include "models/layers.hpp"

#include <cmath>
#include <limits>

#include "models/hf_config_reader.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {
namespace models {

// ---- TensorHolder ------------------------------------------------------------------------------

size_t TensorHolder::add_tensor(const std::string& name, at::Tensor value) {
  register_parameter(name, value, /*requires_grad=*/false);
  tensors_.emplace_back(name, std::move(value));
  return tensors_.size() - 1;
}

void TensorHolder::set_tensor(const std::string& name, at::Tensor value) {
  for (auto& [own_name, tensor] : tensors_) {
    if (own_name != name) continue;
    tensor = value;
    parameters_[name] = std::move(value);
    return;
  }
  throw KernelError("module '" + this->name() + "' has no tensor '" + name + "'");
}

void TensorHolder::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  for (auto& [name, tensor] : tensors_) {
    at::Tensor moved =
        tensor.to(device, tensor.is_floating_point() ? dtype : tensor.scalar_type(), non_blocking);
    set_tensor(name, moved);
  }
  for (auto& child : children())
    child->to(device, dtype, non_blocking);
}

void TensorHolder::to(torch::Dtype dtype, bool non_blocking) {
  for (auto& [name, tensor] : tensors_)
    if (tensor.is_floating_point()) set_tensor(name, tensor.to(dtype, non_blocking));
  for (auto& child : children())
    child->to(dtype, non_blocking);
}

void TensorHolder::to(torch::Device device, bool non_blocking) {
  for (auto& [name, tensor] : tensors_)
    set_tensor(name, tensor.to(device, non_blocking));
  for (auto& child : children())
    child->to(device, non_blocking);
}

// ---- Embedding, norms --------------------------------------------------------------------------

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t dim, const at::TensorOptions& options,
                             std::string type_name)
    : TensorHolder(std::move(type_name)) {
  add_tensor("weight", at::empty({num_embeddings, dim}, options));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) const {
  return at::embedding(weight(), ids);
}

RMSNormImpl::RMSNormImpl(std::string type_name, int64_t dim, double eps,
                         const at::TensorOptions& options)
    : TensorHolder(std::move(type_name)), eps_(eps) {
  add_tensor("weight", at::empty({dim}, options));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) const {
  const auto input_dtype = x.scalar_type();
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return tensor(0) * h.to(input_dtype);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps, bool bias, const at::TensorOptions& options)
    : TensorHolder("LayerNorm"), dim_(dim), eps_(eps), bias_(bias) {
  add_tensor("weight", at::empty({dim}, options));
  if (bias) add_tensor("bias", at::empty({dim}, options));
}

// LibTorch 1.13 lacks several float16 CPU kernels (matrix products among them): such tensors are
// computed in float32 and rounded back.
bool cpu_half(const at::Tensor& t) {
  return t.is_cpu() && t.scalar_type() == at::kHalf;
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) const {
  if (cpu_half(x))
    return at::layer_norm(x.to(at::kFloat), {dim_}, tensor(0).to(at::kFloat),
                          bias_ ? tensor(1).to(at::kFloat) : at::Tensor(), eps_)
        .to(at::kHalf);
  return at::layer_norm(x, {dim_}, tensor(0), bias_ ? tensor(1) : at::Tensor(), eps_);
}

// ---- rotary embeddings -------------------------------------------------------------------------

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta, const Value& rope_scaling,
                                 int64_t max_position_embeddings) {
  // inv_freq = 1 / theta^(arange(0, d, 2) / d), in float32 as transformers computes it.
  at::Tensor exponents =
      at::arange(0, head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
      static_cast<double>(head_dim);
  inv_freq_ = 1.0 / at::pow(theta, exponents);
  if (!rope_scaling.is_map()) return;
  HfConfigReader scaling(rope_scaling);
  std::string type = scaling.get_string("rope_type", scaling.get_string("type", "default"));
  if (type == "default") return;
  if (type == "linear") {
    inv_freq_ = inv_freq_ / scaling.require_double("factor");
    return;
  }
  if (type == "llama3") {
    const double factor = scaling.require_double("factor");
    const double low_freq_factor = scaling.require_double("low_freq_factor");
    const double high_freq_factor = scaling.require_double("high_freq_factor");
    const double old_context =
        static_cast<double>(scaling.require_int("original_max_position_embeddings"));
    const double low_freq_wavelen = old_context / low_freq_factor;
    const double high_freq_wavelen = old_context / high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv_freq_;
    at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq_ / factor, inv_freq_);
    at::Tensor smooth =
        (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    at::Tensor medium = at::logical_not(wavelen < high_freq_wavelen)
                            .logical_and(at::logical_not(wavelen > low_freq_wavelen));
    inv_freq_ = at::where(medium, smoothed, scaled);
    return;
  }
  (void)max_position_embeddings;
  scaling.fail("rope_type", "rope_scaling type '" + type +
                                "' is not supported; supported: default, linear, llama3");
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(int64_t seq_len, at::ScalarType dtype,
                                                           const at::Device& device) {
  if (!cached_cos_.defined() || cached_cos_.size(0) < seq_len ||
      cached_cos_.scalar_type() != dtype || cached_cos_.device() != device) {
    at::Tensor positions = at::arange(seq_len, at::TensorOptions().dtype(at::kFloat));
    at::Tensor freqs = at::outer(positions, inv_freq_);
    at::Tensor emb = at::cat({freqs, freqs}, -1);
    cached_cos_ = (emb.cos() * attention_scaling_).to(device, dtype);
    cached_sin_ = (emb.sin() * attention_scaling_).to(device, dtype);
  }
  return {cached_cos_.narrow(0, 0, seq_len), cached_sin_.narrow(0, 0, seq_len)};
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

at::Tensor causal_mask(int64_t seq_len, int64_t window, at::ScalarType dtype,
                       const at::Device& device) {
  at::Tensor i = at::arange(seq_len, at::TensorOptions().dtype(at::kLong)).unsqueeze(1);
  at::Tensor j = at::arange(seq_len, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  at::Tensor hidden = j > i;
  if (window > 0) hidden = hidden.logical_or(i - j >= window);
  // torch.finfo(dtype).min, as transformers fills masked positions.
  const double lowest = dtype == at::kHalf       ? -65504.0
                        : dtype == at::kBFloat16 ? -3.3895313892515355e38
                        : dtype == at::kDouble   ? std::numeric_limits<double>::lowest()
                                                 : std::numeric_limits<float>::lowest();
  at::Tensor mask = at::zeros({seq_len, seq_len}, at::TensorOptions().dtype(dtype));
  mask.masked_fill_(hidden, lowest);
  return mask.to(device);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, double scale) {
  if (cpu_half(q))
    return attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), mask.to(at::kFloat),
                     scale)
        .to(at::kHalf);
  const int64_t groups = q.size(1) / k.size(1);
  at::Tensor keys = groups == 1 ? k : k.repeat_interleave(groups, 1);
  at::Tensor values = groups == 1 ? v : v.repeat_interleave(groups, 1);
  at::Tensor scores = at::matmul(q, keys.transpose(-2, -1)) * scale + mask;
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs, values);
}

}  // namespace models
}  // namespace qplug
