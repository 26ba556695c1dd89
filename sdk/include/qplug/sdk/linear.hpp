// qplug::nn::Linear: the linear layer of every qplug model. Its weights and matmul belong to a
// LinearKernel, so a quantizer converts a layer by swapping the kernel in place; the module, its
// name and its place in the tree stay, and typed members of the parent keep working (which a
// Python-style `parent._modules[name] = new_module` could not do in C++).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/linear_kernel.hpp"

namespace qplug {
namespace nn {

// How a dense weight is laid out in checkpoints. Kernels always see [out, in]; GPT-2's Conv1D
// stores [in, out], and the checkpoint loader and saver transpose it (in one place:
// checkpoint_layout.hpp). Quantized formats are written [out, in]-based whatever the layer.
enum class WeightLayout { OutIn, InOut };

class LinearImpl : public torch::nn::Module {
 public:
  // A dense layer with uninitialised weights on `device` (use "meta" for a skeleton). Its type is
  // "Linear", or "Conv1D" for the InOut layout.
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, DType dtype,
             const std::string& device, WeightLayout layout = WeightLayout::OutIn);

  at::Tensor forward(const at::Tensor& x);

  const LinearShape& shape() const { return shape_; }
  int64_t in_features() const { return shape_.in_features; }
  int64_t out_features() const { return shape_.out_features; }
  DType dtype() const { return dtype_; }
  WeightLayout layout() const { return layout_; }
  // The activation dtype changes with the model's dtype; the kernel's storage does not.
  void set_dtype(DType dtype) { dtype_ = dtype; }

  LinearKernel& kernel() { return *kernel_; }
  const LinearKernel& kernel() const { return *kernel_; }
  const std::shared_ptr<LinearKernel>& kernel_ptr() const { return kernel_; }
  // Which plugin's code the kernel is ("core" for the dense kernel); errors name it.
  const std::string& kernel_owner() const { return kernel_owner_; }
  // Swaps in another kernel. Its shape must equal this layer's.
  void set_kernel(OwnedKernel kernel);
  bool is_quantized() const { return !kernel_->quant_method().empty(); }

  // Moves the kernel's tensors. A dtype change only changes the activation dtype.
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;

  void pretty_print(std::ostream& stream) const override;

  // Calibration: called with the layer's input before every forward (null to stop).
  void set_input_observer(std::function<void(const at::Tensor&)> observer) {
    input_observer_ = std::move(observer);
  }

 private:
  LinearShape shape_;
  DType dtype_;
  WeightLayout layout_;
  std::shared_ptr<LinearKernel> kernel_;
  std::string kernel_owner_;
  std::function<void(const at::Tensor&)> input_observer_;
};

TORCH_MODULE(Linear);

}  // namespace nn

}  // namespace qplug
