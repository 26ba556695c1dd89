#include "checkpoint/checkpoint_layout.hpp"

#include <set>

#include "qplug/sdk/torch_interop.hpp"

namespace qplug {

namespace {

// Only a dense weight (floating, [out, in]) is stored transposed; quantized formats are not.
bool is_transposed(const nn::LinearImpl& layer, const TensorSpec& spec) {
  return layer.layout() == nn::WeightLayout::InOut && spec.suffix == "weight" &&
         is_floating(spec.dtype) && spec.shape.size() == 2 &&
         spec.shape[0] == layer.out_features() && spec.shape[1] == layer.in_features();
}

}  // namespace

std::map<std::string, TensorSlot> tensor_slots(Model& model, bool for_saving) {
  std::set<std::string> tied_targets;
  for (const auto& t : model.describe().tied_weights)
    tied_targets.insert(t.target);
  std::map<std::string, TensorSlot> slots;
  for (const auto& item : model.root().named_modules("", /*include_self=*/false)) {
    const std::string& module = item.key();
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(item.value().get())) {
      const auto specs =
          for_saving ? linear->kernel().tensor_specs() : linear->kernel().input_tensor_specs();
      for (const auto& spec : specs) {
        TensorSlot slot;
        slot.linear = linear;
        slot.local = spec.suffix;
        slot.spec = spec;
        slot.transposed = is_transposed(*linear, spec);
        const std::string full = module + "." + spec.suffix;
        slot.optional = tied_targets.count(full) > 0;
        slots.emplace(full, std::move(slot));
      }
    } else if (auto* holder = dynamic_cast<models::TensorHolder*>(item.value().get())) {
      for (const auto& [name, tensor] : holder->own_tensors()) {
        TensorSlot slot;
        slot.holder = holder;
        slot.local = name;
        slot.spec = TensorSpec{name, tensor.sizes().vec(), from_scalar_type(tensor.scalar_type())};
        const std::string full = module + "." + name;
        slot.optional = tied_targets.count(full) > 0;
        slots.emplace(full, std::move(slot));
      }
    }
  }
  return slots;
}

bool specs_describe_tensors(const LinearKernel& kernel) {
  if (kernel.quant_method().empty()) return false;
  for (const auto& spec : kernel.tensor_specs())
    for (int64_t d : spec.shape)
      if (d < 0) return false;
  return true;
}

std::vector<int64_t> checkpoint_shape(const TensorSlot& slot) {
  if (!slot.transposed) return slot.spec.shape;
  return {slot.spec.shape[1], slot.spec.shape[0]};
}

at::Tensor from_checkpoint_layout(const TensorSlot& slot, const at::Tensor& stored) {
  return slot.transposed ? stored.t().contiguous() : stored;
}

at::Tensor to_checkpoint_layout(const TensorSlot& slot, const at::Tensor& held) {
  return slot.transposed ? held.t().contiguous() : held;
}

}  // namespace qplug
