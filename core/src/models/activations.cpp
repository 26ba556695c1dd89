#include "models/activations.hpp"

#include <cmath>

#include <ATen/ATen.h>

namespace qplug {
namespace models {

std::optional<Activation> activation_from_name(const std::string& name) {
  if (name == "gelu_new") return Activation::GeluNew;
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_pytorch_tanh") return Activation::GeluTanh;
  if (name == "relu") return Activation::Relu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  return std::nullopt;
}

at::Tensor activate(Activation activation, const at::Tensor& x) {
  // LibTorch 1.13 has no float16 CPU kernels for these: compute in float32, round back.
  if (x.is_cpu() && x.scalar_type() == at::kHalf)
    return activate(activation, x.to(at::kFloat)).to(at::kHalf);
  switch (activation) {
    case Activation::GeluNew:
      // transformers' NewGELUActivation, written out as it is (not torch's tanh GELU kernel).
      return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
    case Activation::Gelu:
      return at::gelu(x);
    case Activation::GeluTanh:
      return at::gelu(x, "tanh");
    case Activation::Relu:
      return at::relu(x);
    case Activation::Silu:
      return at::silu(x);
  }
  return x;
}

}  // namespace models
}  // namespace qplug
