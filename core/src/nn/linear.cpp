#include "qplug/sdk/linear.hpp"

#include <ostream>

#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/guard.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {
namespace nn {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias, DType dtype,
                       const std::string& device, WeightLayout layout)
    : torch::nn::Module(layout == WeightLayout::InOut ? "Conv1D" : "Linear"),
      shape_{in_features, out_features, bias},
      dtype_(dtype),
      layout_(layout) {
  LinearKernelArgs args;
  args.shape = shape_;
  args.dtype = dtype;
  args.device = device;
  OwnedKernel dense = make_dense_kernel(args);
  kernel_ = std::move(dense.kernel);
  kernel_owner_ = std::move(dense.owner);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  if (input_observer_) input_observer_(x);
  return guarded(kernel_owner_, "LinearKernel::apply", [&] { return kernel_->apply(x); });
}

void LinearImpl::set_kernel(OwnedKernel kernel) {
  if (!kernel.kernel) throw KernelError("set_kernel: no kernel given");
  const LinearShape s = kernel.kernel->shape();
  if (s.in_features != shape_.in_features || s.out_features != shape_.out_features ||
      s.has_bias != shape_.has_bias)
    throw KernelError("kernel '" + kernel.kernel->name() + "' is for a [" +
                      std::to_string(s.out_features) + ", " + std::to_string(s.in_features) +
                      "] layer, but this layer is [" + std::to_string(shape_.out_features) + ", " +
                      std::to_string(shape_.in_features) + "]");
  kernel_ = std::move(kernel.kernel);
  kernel_owner_ = std::move(kernel.owner);
}

void LinearImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  to(device, non_blocking);
  to(dtype, non_blocking);
}

void LinearImpl::to(torch::Dtype dtype, bool) {
  const DType target = from_scalar_type(dtype);
  if (!is_quantized() && target != dtype_) {
    // A dense layer changes its storage with the model; a quantized one keeps its format and only
    // computes in the new activation dtype.
    LinearKernelArgs args;
    args.shape = shape_;
    args.dtype = target;
    const auto tensors = kernel_->tensors();
    args.device = tensors.empty() ? std::string("cpu") : tensors.front().second.device().str();
    OwnedKernel dense = make_dense_kernel(args);
    for (const auto& [suffix, tensor] : tensors)
      dense.kernel->load_tensor(suffix, tensor);
    kernel_ = std::move(dense.kernel);
    kernel_owner_ = std::move(dense.owner);
  }
  dtype_ = target;
}

void LinearImpl::to(torch::Device device, bool) {
  guarded(kernel_owner_, "LinearKernel::to", [&] { kernel_->to(device); });
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << "Linear(in_features=" << shape_.in_features << ", out_features=" << shape_.out_features
         << ", bias=" << (shape_.has_bias ? "true" : "false") << ", kernel=" << kernel_->name()
         << ")";
}

}  // namespace nn
}  // namespace qplug
