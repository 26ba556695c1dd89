// The dense linear kernel: full-precision weight [out, in] and optional bias.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>

#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {

namespace {

class DenseKernel final : public LinearKernel {
 public:
  explicit DenseKernel(const LinearKernelArgs& args) : args_(args) {}

  std::string name() const override { return "dense"; }
  std::string quant_method() const override { return {}; }
  LinearShape shape() const override { return args_.shape; }

  std::vector<TensorSpec> tensor_specs() const override {
    std::vector<TensorSpec> specs{
        {"weight", {args_.shape.out_features, args_.shape.in_features}, args_.dtype}};
    if (args_.shape.has_bias) specs.push_back({"bias", {args_.shape.out_features}, args_.dtype});
    return specs;
  }

  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    if (weight_.defined()) out.emplace_back("weight", weight_);
    if (bias_.defined()) out.emplace_back("bias", bias_);
    return out;
  }

  void load_tensor(const std::string& suffix, const at::Tensor& value) override {
    if (suffix == "weight") {
      check_shape(suffix, value, {args_.shape.out_features, args_.shape.in_features});
      weight_ = to_layer_dtype(value);
    } else if (suffix == "bias" && args_.shape.has_bias) {
      check_shape(suffix, value, {args_.shape.out_features});
      bias_ = to_layer_dtype(value);
    } else {
      throw CheckpointError("", args_.layer + "." + suffix,
                            "unexpected tensor: the dense layer '" + args_.layer + "' holds " +
                                (args_.shape.has_bias ? "weight and bias" : "only weight"));
    }
  }

  void process_weights_after_loading() override {
    if (!weight_.defined()) throw CheckpointError("", args_.layer + ".weight", "missing tensor");
    if (args_.shape.has_bias && !bias_.defined())
      throw CheckpointError("", args_.layer + ".bias", "missing tensor");
  }

  at::Tensor apply(const at::Tensor& x) override {
    // LibTorch 1.13 has no float16 matrix multiply on the CPU: compute those in float32.
    if (weight_.is_cpu() && weight_.scalar_type() == at::kHalf) {
      const at::Tensor b = bias_.defined() ? bias_.to(at::kFloat) : at::Tensor();
      return at::linear(x.to(at::kFloat), weight_.to(at::kFloat), b).to(x.scalar_type());
    }
    if (x.scalar_type() == weight_.scalar_type()) return at::linear(x, weight_, bias_);
    return at::linear(x.to(weight_.scalar_type()), weight_, bias_).to(x.scalar_type());
  }

  at::Tensor dequantize(DType dtype) const override { return weight_.to(to_scalar_type(dtype)); }
  at::Tensor bias() const override { return bias_; }

  bool is_supported(const c10::Device&, DType activation_dtype) const override {
    return is_floating(activation_dtype);
  }

  void to(const c10::Device& device) override {
    if (weight_.defined()) weight_ = weight_.to(device);
    if (bias_.defined()) bias_ = bias_.to(device);
    args_.device = device.str();
  }

 private:
  void check_shape(const std::string& suffix, const at::Tensor& value,
                   const std::vector<int64_t>& expected) const {
    if (value.sizes().vec() != expected)
      throw CheckpointError("", args_.layer + "." + suffix,
                            "shape " + shape_string(value.sizes().vec()) + " does not match the " +
                                "layer's " + shape_string(expected));
    if (!value.is_floating_point())
      throw CheckpointError("", args_.layer + "." + suffix,
                            std::string("dtype ") + c10::toString(value.scalar_type()) +
                                " is not a floating-point type");
  }

  at::Tensor to_layer_dtype(const at::Tensor& value) const {
    const auto wanted = to_scalar_type(args_.dtype);
    return value.scalar_type() == wanted ? value : value.to(wanted);
  }

  LinearKernelArgs args_;
  at::Tensor weight_;
  at::Tensor bias_;
};

}  // namespace

OwnedKernel make_dense_kernel(const LinearKernelArgs& args) {
  auto kernel = std::make_shared<DenseKernel>(args);
  // Uninitialised tensors on the layer's device; on "meta" (a skeleton) they have no storage, and
  // loading replaces them.
  const auto options =
      at::TensorOptions().device(c10::Device(args.device)).dtype(to_scalar_type(args.dtype));
  kernel->load_tensor("weight",
                      at::empty({args.shape.out_features, args.shape.in_features}, options));
  if (args.shape.has_bias)
    kernel->load_tensor("bias", at::empty({args.shape.out_features}, options));
  return OwnedKernel{std::move(kernel), "core"};
}

}  // namespace qplug
