// A base for linear kernels that compute on the CPU and keep their tensors in host memory, as the
// built-in bnb, gptq and awq kernels do. It holds the layer's arguments and bias and gives the
// answers all such kernels give: CPU only, any floating activation dtype, no move to another
// device, the dense weight as input when quantizing while loading, and CheckpointErrors that name
// the layer's tensor. Header only, so a plugin that uses it
// needs nothing from libqplug_core beyond what LinearKernel needs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear_kernel.hpp"

namespace qplug {

class CpuLinearKernel : public LinearKernel {
 public:
  LinearShape shape() const override { return args_.shape; }
  at::Tensor bias() const override { return bias_; }

  // A pre-quantized checkpoint brings the kernel's own tensors; otherwise the layer quantizes
  // while loading and receives the dense "weight" [out, in] (and "bias") in its dtype.
  std::vector<TensorSpec> input_tensor_specs() const override {
    if (args_.pre_quantized) return tensor_specs();
    std::vector<TensorSpec> dense{
        {"weight", {args_.shape.out_features, args_.shape.in_features}, args_.dtype}};
    if (args_.shape.has_bias) dense.push_back({"bias", {args_.shape.out_features}, args_.dtype});
    return dense;
  }

  bool is_supported(const c10::Device& device, DType activation_dtype) const override {
    return device.is_cpu() && is_floating(activation_dtype);
  }

  void to(const c10::Device& device) override {
    if (!device.is_cpu())
      throw KernelError("the " + kind_ + " CPU kernel of '" + args_.layer + "' cannot move to " +
                        device.str() + "; load the model on that device instead");
  }

 protected:
  // kind names the kernel in messages: "GPTQ", "AWQ", "bnb int8".
  CpuLinearKernel(const LinearKernelArgs& args, std::string kind)
      : args_(args), kind_(std::move(kind)) {}

  // Throws a CheckpointError naming the layer's tensor "<layer>.<suffix>".
  [[noreturn]] void fail(const std::string& suffix, const std::string& message) const {
    throw CheckpointError("", args_.layer + "." + suffix, message);
  }

  LinearKernelArgs args_;
  at::Tensor bias_;  // undefined when the layer has none

 private:
  std::string kind_;
};

}  // namespace qplug
