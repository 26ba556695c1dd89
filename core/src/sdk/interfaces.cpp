// Out-of-line destructors (so each interface's typeinfo and vtable live once, in libqplug_core)
// and the default behaviour of the SDK interfaces.
#include <ATen/core/Tensor.h>

#include "checkpoint/checkpoint_layout.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/host_services.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/model.hpp"
#include "qplug/sdk/quantizer.hpp"
#include "qplug/sdk/registrar.hpp"

namespace qplug {

// ---- LinearKernel ------------------------------------------------------------------------------

LinearKernel::~LinearKernel() = default;

int64_t TensorSpec::bytes() const {
  int64_t n = dtype_size(dtype);
  for (int64_t d : shape)
    n *= d;
  return n;
}

int64_t LinearKernel::bytes() const {
  int64_t total = 0;
  // Counted from the specs where they say it all: tensors() may build copies
  // (specs_describe_tensors).
  const auto current =
      specs_describe_tensors(*this) ? std::vector<std::pair<std::string, at::Tensor>>() : tensors();
  if (current.empty()) {
    for (const auto& spec : tensor_specs())
      total += spec.bytes();
    return total;
  }
  for (const auto& [suffix, tensor] : current)
    if (tensor.defined()) total += static_cast<int64_t>(tensor.numel() * tensor.element_size());
  return total;
}

// ---- Registrar, HostServices, calibration ------------------------------------------------------

BlockCalibration::~BlockCalibration() = default;
CalibrationData::CalibrationData(std::vector<std::vector<int64_t>> windows)
    : windows_(std::move(windows)) {}

Registrar::~Registrar() = default;
HostServices::~HostServices() = default;

// ---- Model -------------------------------------------------------------------------------------

Model::~Model() = default;

const std::string& Model::model_type() const {
  static const std::string unknown;
  const Value* type = hf_config().find("model_type");
  return type != nullptr && type->is_string() ? type->as_string() : unknown;
}

nn::LinearImpl* Model::find_linear(const std::string& name) {
  for (const auto& named : linear_layers())
    if (named.name == name) return named.layer;
  return nullptr;
}

void Model::set_quantization(const std::string& method, Value config) {
  if (!is_quantized_) pre_quantization_dtype_ = dtype();
  is_quantized_ = true;
  quantization_method_ = method;
  if (!config.is_null()) mutable_hf_config().set("quantization_config", std::move(config));
}

void Model::clear_quantization() {
  is_quantized_ = false;
  quantization_method_.clear();
  mutable_hf_config().erase("quantization_config");
}

// ---- Quantizer defaults ------------------------------------------------------------------------

Quantizer::Quantizer(QuantConfig config, bool pre_quantized)
    : config_(std::move(config)), pre_quantized_(pre_quantized) {}
Quantizer::~Quantizer() = default;

void Quantizer::validate_environment(const Environment&) const {}

std::optional<DType> Quantizer::update_dtype(std::optional<DType> requested) const {
  return requested;
}

std::optional<std::string> Quantizer::unsupported_reason(const ModuleInfo&) const {
  return std::nullopt;
}

void Quantizer::process_model_after_weight_loading(Model&, HostServices&) {}

void Quantizer::quantize(Model&, const TargetPlan&, const CalibrationData&, HostServices&) {
  throw UnsupportedError("quant_method '" + quant_method() +
                         "' quantizes while the model loads; it takes no calibration step");
}

void Quantizer::dequantize(Model& model, DType dtype, HostServices& services) {
  for (const NamedLinear& named : model.linear_layers()) {
    nn::LinearImpl& layer = *named.layer;
    if (layer.kernel().quant_method() != quant_method()) continue;
    LinearKernelArgs args;
    args.layer = named.name;
    args.shape = layer.shape();
    args.dtype = dtype;
    args.device = model.device();
    OwnedKernel dense = make_dense_kernel(args);
    dense.kernel->load_tensor("weight", layer.kernel().dequantize(dtype));
    if (layer.shape().has_bias) dense.kernel->load_tensor("bias", layer.kernel().bias());
    dense.kernel->process_weights_after_loading();
    layer.set_kernel(std::move(dense));
    layer.set_dtype(dtype);
  }
}

Value Quantizer::serialized_config(const TargetPlan&) const {
  Value out = Value::map();
  out.set("quant_method", quant_method());
  for (const auto& [key, value] : config().values().as_map())
    out.set(key, value);
  return out;
}

CalibrationRequest Quantizer::calibration_request() const {
  return {};
}

std::vector<std::pair<std::string, std::string>> Quantizer::extra_files(const TargetPlan&) const {
  return {};
}

}  // namespace qplug
