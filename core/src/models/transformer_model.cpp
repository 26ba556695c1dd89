#include "models/transformer_model.hpp"

#include <map>

#include <ATen/core/Tensor.h>

#include "checkpoint/checkpoint_layout.hpp"
#include "models/layers.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {
namespace models {

namespace {

// Identity of a tensor's storage, so two parameters that are one tensor (tied weights) are seen
// as such even on the meta device.
const void* storage_identity(const at::Tensor& t) {
  if (t.has_storage()) return t.storage().unsafeGetStorageImpl();
  return t.unsafeGetTensorImpl();
}

ParamInfo param_info(const std::string& name, const at::Tensor& t) {
  return ParamInfo{name, t.sizes().vec(), from_scalar_type(t.scalar_type())};
}

}  // namespace

std::string module_type_name(const torch::nn::Module& module) {
  const std::string& full = module.name();
  const auto colon = full.rfind("::");
  if (colon == std::string::npos) return full;
  // LibTorch names its modules by their implementation class ("torch::nn::ModuleListImpl");
  // transformers' class is the holder's name, without "Impl".
  std::string type = full.substr(colon + 2);
  const std::string impl = "Impl";
  if (type.size() > impl.size() && type.compare(type.size() - impl.size(), impl.size(), impl) == 0)
    type.resize(type.size() - impl.size());
  return type;
}

TransformerModel::TransformerModel(Value hf_config, DType dtype, std::string device)
    : hf_config_(std::move(hf_config)), dtype_(dtype), device_(std::move(device)) {}

ModelDescription TransformerModel::describe() const {
  ModelDescription d;
  d.model_type = model_type();
  const ArchitectureFacts arch = facts();
  d.output_embedding = arch.output_embedding;
  d.block_container = arch.block_container;
  d.num_blocks = num_blocks();
  d.keep_in_fp32_modules = arch.keep_in_fp32;
  d.base_model_prefix = arch.base_model_prefix;
  d.ignore_on_load = arch.ignore_on_load;
  d.tied_weights = arch.declared_tied;

  std::map<const void*, std::string> first_owner;  // storage -> first parameter name
  // Every tensor entered in first_owner is held until the walk ends, so that a freed storage's
  // address is not mistaken for a shared one. Tensors a kernel made on the fly for this call (a
  // quant map, or a whole weight in checkpoint form) share no storage with anything: they are
  // neither held nor entered, or describing a model would keep a copy of all such weights.
  std::vector<at::Tensor> keep_alive;
  for (const auto& item : root_->named_modules("", /*include_self=*/false)) {
    ModuleInfo info;
    info.name = item.key();
    info.type = module_type_name(*item.value());
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    if (const auto* linear = dynamic_cast<const nn::LinearImpl*>(item.value().get())) {
      info.is_linear = true;
      info.in_features = linear->in_features();
      info.out_features = linear->out_features();
      info.has_bias = linear->shape().has_bias;
      info.kernel = linear->kernel().name();
      info.dtype = linear->dtype();
      const auto specs = linear->kernel().tensor_specs();
      if (specs_describe_tensors(linear->kernel())) {
        for (const auto& spec : specs) {
          info.params.push_back({spec.suffix, spec.shape, spec.dtype});
          d.parameter_order.push_back(info.name + "." + spec.suffix);
        }
      } else {
        tensors = linear->kernel().tensors();
        if (tensors.empty())
          for (const auto& spec : specs)
            info.params.push_back({spec.suffix, spec.shape, spec.dtype});
      }
    } else if (const auto* holder = dynamic_cast<const TensorHolder*>(item.value().get())) {
      tensors = holder->own_tensors();
    }
    for (const auto& [local, tensor] : tensors) {
      if (!tensor.defined()) continue;
      info.params.push_back(param_info(local, tensor));
      if (!info.is_linear && tensor.is_floating_point()) info.dtype = info.params.back().dtype;
      const std::string full = info.name + "." + local;
      const bool made_for_this_call =
          tensor.use_count() == 1 && tensor.has_storage() && tensor.storage().use_count() == 1;
      if (made_for_this_call) {
        d.parameter_order.push_back(full);
        continue;
      }
      keep_alive.push_back(tensor);
      auto [it, first] = first_owner.emplace(storage_identity(tensor), full);
      if (first) {
        d.parameter_order.push_back(full);
      } else {
        bool declared = false;
        for (const auto& t : d.tied_weights)
          declared |= t.target == full && t.source == it->second;
        if (!declared) d.tied_weights.push_back({full, it->second});
      }
    }
    // GPT-2's Conv1D holds its dense weight [in, out] in transformers and in checkpoints, while
    // the kernel computes with [out, in]; describe it as transformers has it (the rule of
    // checkpoint_layout.cpp), so expected_tensors(describe()) matches the checkpoint.
    if (const auto* linear = dynamic_cast<const nn::LinearImpl*>(item.value().get());
        linear != nullptr && linear->layout() == nn::WeightLayout::InOut) {
      for (auto& p : info.params)
        if (p.name == "weight" && is_floating(p.dtype) &&
            p.shape == std::vector<int64_t>{info.out_features, info.in_features})
          std::swap(p.shape[0], p.shape[1]);
    }
    d.modules.push_back(std::move(info));
  }
  for (int64_t b = 0; b < d.num_blocks; ++b) {
    const std::string block = block_name(b);
    for (const auto& [fused_name, members] : arch.fused_in_block) {
      FusedGroup group{block + "." + fused_name, {}};
      for (const auto& m : members)
        group.members.push_back(block + "." + m);
      d.fused_groups.push_back(std::move(group));
    }
    for (const auto& g : arch.scaling_in_block) {
      ScalingGroup group{block + "." + g.prev_op, {}, block + "." + g.inspect};
      for (const auto& l : g.linears)
        group.linears.push_back(block + "." + l);
      d.scaling_groups.push_back(std::move(group));
    }
  }
  return d;
}

at::Tensor TransformerModel::run_block_module(int64_t index, const std::string& module,
                                              const at::Tensor& input) {
  const std::string block = block_name(index) + ".";
  if (module.rfind(block, 0) == 0)
    if (nn::LinearImpl* linear = find_linear(module)) return linear->forward(input);
  throw UnsupportedError("'" + module + "' is not a module of " + block_name(index) + " that the " +
                         model_type() + " architecture can run on its own");
}

void TransformerModel::divide_output_channels(const std::string& op, const at::Tensor& scales) {
  std::shared_ptr<torch::nn::Module> found;
  for (const auto& item : root_->named_modules("", /*include_self=*/false))
    if (item.key() == op) found = item.value();
  if (!found) throw UnsupportedError("no module '" + op + "' to fold scales into");
  const at::Tensor s = scales.to(at::kFloat).reshape({-1});
  const int64_t n = s.numel();
  // Divides the last n entries along dim 0 (a linear's output rows, or a norm's channels).
  auto divided = [&](const at::Tensor& t) {
    if (t.size(0) < n)
      throw UnsupportedError("'" + op + "' has " + std::to_string(t.size(0)) +
                             " output channels, fewer than the " + std::to_string(n) + " scales");
    at::Tensor f = t.to(at::kFloat).clone();
    at::Tensor tail = f.slice(0, t.size(0) - n);
    tail.div_(t.dim() == 2 ? s.to(t.device()).view({-1, 1}) : s.to(t.device()));
    return f.to(t.scalar_type());
  };
  if (auto* linear = dynamic_cast<nn::LinearImpl*>(found.get())) {
    if (linear->is_quantized())
      throw UnsupportedError("cannot fold scales into '" + op + "': it is already quantized");
    for (const auto& [name, t] : linear->kernel().tensors())
      linear->kernel().load_tensor(name, divided(t));
    return;
  }
  auto* holder = dynamic_cast<TensorHolder*>(found.get());
  bool has_weight = false;
  if (holder != nullptr) {
    const auto tensors = holder->own_tensors();  // a copy: set_tensor replaces entries
    for (const auto& [name, t] : tensors)
      if (name == "weight" || name == "bias") {
        has_weight |= name == "weight";
        holder->set_tensor(name, divided(t));
      }
  }
  if (!has_weight)
    throw UnsupportedError("cannot fold scales into '" + op + "' (" + module_type_name(*found) +
                           "): it has no weight to divide");
}

void TransformerModel::to_device(const std::string& device) {
  root_->to(c10::Device(device));
  device_ = device;
}

std::vector<NamedLinear> TransformerModel::linear_layers() {
  std::vector<NamedLinear> out;
  for (const auto& item : root_->named_modules("", /*include_self=*/false))
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(item.value().get()))
      out.push_back({item.key(), linear});
  return out;
}

at::Tensor TransformerModel::forward(const at::Tensor& input_ids) {
  at::Tensor hidden = embed(input_ids);
  for (int64_t b = 0; b < num_blocks(); ++b)
    hidden = run_block(b, hidden);
  return head(hidden);
}

std::string TransformerModel::block_name(int64_t index) const {
  return facts().block_container + "." + std::to_string(index);
}

}  // namespace models
}  // namespace qplug
