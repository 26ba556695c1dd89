// An example third-party qplug plugin: per-channel symmetric int8 round-to-nearest.
//
// Each linear layer's weight W [out, in] becomes int8 codes q = round(W / s) with one float32
// scale per output row, s = max|W[r]| / 127, stored as "<layer>.weight" (int8) and
// "<layer>.weight_scale" (float32 [out]). It uses only the qplug SDK: a quantizer that swaps the
// kernels of the layers core's targeting chose, and a linear kernel that holds the format.
#include <ATen/ATen.h>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/host_services.hpp>
#include <qplug/sdk/linear.hpp>
#include <qplug/sdk/linear_kernel.hpp>
#include <qplug/sdk/model.hpp>
#include <qplug/sdk/plugin.hpp>
#include <qplug/sdk/quantizer.hpp>
#include <qplug/sdk/tensor_memory.hpp>
#include <qplug/sdk/torch_interop.hpp>

namespace example {

using namespace qplug;

constexpr const char* kMethod = "int8_rtn";

class Int8RtnKernel final : public LinearKernel {
 public:
  explicit Int8RtnKernel(const LinearKernelArgs& args) : args_(args) {}

  std::string name() const override { return "int8_rtn"; }
  std::string quant_method() const override { return kMethod; }
  LinearShape shape() const override { return args_.shape; }

  std::vector<TensorSpec> tensor_specs() const override {
    std::vector<TensorSpec> specs{
        {"weight", {args_.shape.out_features, args_.shape.in_features}, DType::I8},
        {"weight_scale", {args_.shape.out_features}, DType::F32}};
    if (args_.shape.has_bias) specs.push_back({"bias", {args_.shape.out_features}, args_.dtype});
    return specs;
  }

  // Quantizing while loading: the checkpoint brings the dense weight.
  std::vector<TensorSpec> input_tensor_specs() const override {
    if (args_.pre_quantized) return tensor_specs();
    std::vector<TensorSpec> specs{
        {"weight", {args_.shape.out_features, args_.shape.in_features}, args_.dtype}};
    if (args_.shape.has_bias) specs.push_back({"bias", {args_.shape.out_features}, args_.dtype});
    return specs;
  }

  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    if (!codes_.defined()) return out;
    out.emplace_back("weight", codes_);
    out.emplace_back("weight_scale", scale_);
    if (bias_.defined()) out.emplace_back("bias", bias_);
    return out;
  }

  void load_tensor(const std::string& suffix, const at::Tensor& value) override {
    if (suffix == "bias") {
      bias_ = value.to(to_scalar_type(args_.dtype));
    } else if (suffix == "weight" && !args_.pre_quantized) {
      const at::Tensor w = value.to(at::kFloat);
      if (!at::isfinite(w).all().item<bool>())
        throw KernelError("layer '" + args_.layer + "' has NaN or infinite weights");
      // Per-row scale; an all-zero row keeps scale 1 so its codes are 0, not NaN.
      scale_ = (w.abs().amax(1) / 127.0).clamp_min(1e-12);
      // Codes every matmul streams: weight memory (huge pages from 2 MiB up, SDK 1.2).
      codes_ = empty_for_weights(w.sizes().vec(), at::kChar);
      codes_.copy_(at::round(w / scale_.unsqueeze(1)).clamp(-127, 127));
    } else if (suffix == "weight") {
      codes_ = value.to(at::kChar);
    } else if (suffix == "weight_scale") {
      scale_ = value.to(at::kFloat);
    } else {
      throw CheckpointError("", args_.layer + "." + suffix, "unexpected tensor for int8_rtn");
    }
  }

  void process_weights_after_loading() override {
    if (!codes_.defined() || !scale_.defined())
      throw CheckpointError("", args_.layer + ".weight", "int8_rtn needs weight and weight_scale");
  }

  at::Tensor apply(const at::Tensor& x) override {
    const at::Tensor w = dequantize(from_scalar_type(x.scalar_type()));
    return at::linear(x, w, bias_.defined() ? bias_.to(x.scalar_type()) : at::Tensor());
  }

  at::Tensor dequantize(DType dtype) const override {
    return (codes_.to(at::kFloat) * scale_.unsqueeze(1)).to(to_scalar_type(dtype));
  }

  at::Tensor bias() const override { return bias_; }
  bool is_supported(const c10::Device&, DType dtype) const override { return is_floating(dtype); }
  void to(const c10::Device& device) override {
    if (codes_.defined()) codes_ = codes_.to(device), scale_ = scale_.to(device);
    if (bias_.defined()) bias_ = bias_.to(device);
  }

 private:
  LinearKernelArgs args_;
  at::Tensor codes_, scale_, bias_;
};

class Int8RtnQuantizer final : public Quantizer {
 public:
  using Quantizer::Quantizer;
  bool requires_calibration() const override { return false; }
  bool is_serializable() const override { return true; }
  bool is_trainable() const override { return false; }

  TargetingRequest targeting_request() const override {
    TargetingRequest request;
    request.skip_modules = config().get_string_list("modules_to_not_convert");
    request.skip_key = "modules_to_not_convert";
    return request;
  }

  int64_t quantized_bytes(const ModuleInfo& linear) const override {
    return linear.in_features * linear.out_features + 4 * linear.out_features +
           (linear.has_bias ? linear.out_features * dtype_size(linear.dtype) : 0);
  }

  void process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                           HostServices& services) override {
    for (const NamedLinear& named : model.linear_layers()) {
      if (!plan.quantizes(named.name)) continue;
      LinearKernelArgs args;
      args.layer = named.name;
      args.shape = named.layer->shape();
      args.dtype = named.layer->dtype();
      args.device = model.device();
      args.config = &config();
      args.pre_quantized = pre_quantized();
      named.layer->set_kernel(services.make_linear_kernel(kMethod, args));
    }
  }

  Value serialized_config(const TargetPlan& plan) const override {
    Value out = Value::map();
    out.set("quant_method", kMethod);
    out.set("modules_to_not_convert", Value::string_list(plan.kept_linears()));
    return out;
  }
};

void register_int8_rtn(Registrar& registrar) {
  ConfigSchema schema(kMethod, "per-channel symmetric int8 round-to-nearest (an SDK example)");
  schema
      .add("modules_to_not_convert", FieldType::StringList, Value(),
           "modules kept in full precision (null: transformers' default skips)")
      .allow_null();
  QuantizerRegistration quantizer;
  quantizer.quant_method = kMethod;
  quantizer.schema = schema;
  quantizer.factory = [](const QuantConfig& config, bool pre_quantized) {
    return std::make_unique<Int8RtnQuantizer>(config, pre_quantized);
  };
  registrar.add_quantizer(std::move(quantizer));

  LinearKernelRegistration kernel;
  kernel.quant_method = kMethod;
  kernel.name = "int8_rtn_cpu";
  kernel.device = "cpu";
  kernel.factory = [](const LinearKernelArgs& args) {
    return std::make_unique<Int8RtnKernel>(args);
  };
  registrar.add_linear_kernel(std::move(kernel));
}

}  // namespace example

QPLUG_PLUGIN("int8_rtn", "1.0.0", "Example Corp", "per-channel int8 round-to-nearest (example)",
             example::register_int8_rtn)
