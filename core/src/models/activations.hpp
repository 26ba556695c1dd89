// Activation functions by their config.json names (transformers' ACT2FN).
#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

namespace qplug {
namespace models {

enum class Activation { GeluNew, Gelu, GeluTanh, Relu, Silu };

// "gelu_new", "gelu", "gelu_pytorch_tanh", "relu", "silu"/"swish"; nullopt for others.
std::optional<Activation> activation_from_name(const std::string& name);
at::Tensor activate(Activation activation, const at::Tensor& x);

}  // namespace models
}  // namespace qplug
