#include <ATen/ATen.h>

#include "models/layers.hpp"
#include "models/transformer_model.hpp"
#include "qplug/core/models.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {

void init_random_weights(Model& model, uint64_t seed, double std) {
  if (model.device() == "meta")
    throw UnsupportedError("a meta skeleton has no storage to initialise; build it on a device");
  at::Generator generator = at::detail::createCPUGenerator(seed);
  auto normal = [&](const at::Tensor& like) {
    at::Tensor t = at::empty(like.sizes(), like.options().device(at::kCPU).dtype(at::kFloat));
    t.normal_(0.0, std, generator);
    return t.to(like.device(), like.scalar_type());
  };
  for (const auto& item : model.root().named_modules("", /*include_self=*/false)) {
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(item.value().get())) {
      if (linear->is_quantized())
        throw UnsupportedError("'" + item.key() + "' is quantized; initialise before quantizing");
      const auto tensors = linear->kernel().tensors();
      for (const auto& [suffix, t] : tensors)
        linear->kernel().load_tensor(suffix, suffix == "bias" ? at::zeros_like(t) : normal(t));
    } else if (auto* holder = dynamic_cast<models::TensorHolder*>(item.value().get())) {
      const bool is_norm = holder->name().find("Norm") != std::string::npos;
      for (const auto& [name, t] : holder->own_tensors()) {
        at::Tensor value = !is_norm         ? normal(t)
                           : name == "bias" ? at::zeros_like(t)
                                            : at::ones_like(t);
        holder->set_tensor(name, value);
      }
    }
  }
  if (auto* transformer = dynamic_cast<models::TransformerModel*>(&model))
    transformer->tie_weights();
}

}  // namespace qplug
