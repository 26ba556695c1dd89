#include "qplug/core/quantizer_handle.hpp"

#include "host/module_patches.hpp"
#include "host/registry.hpp"
#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/guard.hpp"
#include "qplug/sdk/host_services.hpp"
#include "qplug/sdk/model.hpp"

namespace qplug {

QuantizerHandle::QuantizerHandle(std::shared_ptr<Quantizer> quantizer, std::string plugin,
                                 std::shared_ptr<const Registry> registry)
    : quantizer_(std::move(quantizer)),
      plugin_(std::move(plugin)),
      registry_(std::move(registry)) {}

const std::string& QuantizerHandle::quant_method() const {
  return quantizer_->quant_method();
}
const QuantConfig& QuantizerHandle::config() const {
  return quantizer_->config();
}
bool QuantizerHandle::pre_quantized() const {
  return quantizer_->pre_quantized();
}

bool QuantizerHandle::requires_calibration() const {
  return guarded(plugin_, "requires_calibration",
                 [&] { return quantizer_->requires_calibration(); });
}
bool QuantizerHandle::is_serializable() const {
  return guarded(plugin_, "is_serializable", [&] { return quantizer_->is_serializable(); });
}
bool QuantizerHandle::is_trainable() const {
  return guarded(plugin_, "is_trainable", [&] { return quantizer_->is_trainable(); });
}

void QuantizerHandle::validate_environment(const Environment& env) const {
  guarded(plugin_, "validate_environment", [&] { quantizer_->validate_environment(env); });
}

std::optional<DType> QuantizerHandle::update_dtype(std::optional<DType> requested) const {
  return guarded(plugin_, "update_dtype", [&] { return quantizer_->update_dtype(requested); });
}

TargetingRequest QuantizerHandle::targeting_request() const {
  return guarded(plugin_, "targeting_request", [&] { return quantizer_->targeting_request(); });
}

TargetPlan QuantizerHandle::plan(const ModelDescription& model) const {
  QuantizerConstraints constraints;
  constraints.unsupported_reason = [this](const ModuleInfo& m) {
    return guarded(plugin_, "unsupported_reason",
                   [&] { return quantizer_->unsupported_reason(m); });
  };
  constraints.quantized_bytes = [this](const ModuleInfo& m) {
    return guarded(plugin_, "quantized_bytes", [&] { return quantizer_->quantized_bytes(m); });
  };
  return plan_targets(model, quant_method(), targeting_request(), constraints);
}

TargetPlan QuantizerHandle::preprocess_model(Model& model, HostServices& services) const {
  model.set_quantization(quant_method(), Value());
  if (pre_quantized()) apply_module_patches(model, quant_method(), *registry_);
  TargetPlan plan = this->plan(model.describe());
  for (const auto& warning : plan.warnings)
    services.log(LogLevel::Warning, warning);
  const auto unsupported = plan.unsupported();
  if (!unsupported.empty()) {
    const TargetingRequest request = targeting_request();
    std::string message = std::to_string(unsupported.size()) +
                          " layer(s) cannot be converted by '" + quant_method() + "':";
    for (const TargetEntry* e : unsupported)
      message += "\n  " + e->module + ": " + e->rule;
    message +=
        request.skip_hint.empty()
            ? "\nKeep them in full precision by listing them in " +
                  (request.skip_key.empty() ? std::string("the skip list") : request.skip_key) +
                  " (see `qplug inspect`)."
            : "\nTo keep them in full precision: " + request.skip_hint + " (see `qplug inspect`).";
    throw ConfigError(message, config().source(), request.skip_key);
  }
  guarded(plugin_, "process_model_before_weight_loading",
          [&] { quantizer_->process_model_before_weight_loading(model, plan, services); });
  model.set_quantization(quant_method(), serialized_config(plan));
  return plan;
}

void QuantizerHandle::postprocess_model(Model& model, HostServices& services) const {
  guarded(plugin_, "process_model_after_weight_loading",
          [&] { quantizer_->process_model_after_weight_loading(model, services); });
}

void QuantizerHandle::quantize(Model& model, const TargetPlan& plan, const CalibrationData& data,
                               HostServices& services) const {
  guarded(plugin_, "quantize", [&] { quantizer_->quantize(model, plan, data, services); });
}

TargetPlan QuantizerHandle::quantize_model(Model& model, const CalibrationData& data,
                                           HostServices& services) const {
  if (model.is_quantized())
    throw UnsupportedError("the model is already quantized with '" + model.quantization_method() +
                           "'");
  TargetPlan plan = preprocess_model(model, services);
  quantize(model, plan, data, services);
  postprocess_model(model, services);
  return plan;
}

CalibrationRequest QuantizerHandle::calibration_request() const {
  return guarded(plugin_, "calibration_request", [&] { return quantizer_->calibration_request(); });
}

void QuantizerHandle::dequantize(Model& model, DType dtype, HostServices& services) const {
  guarded(plugin_, "dequantize", [&] { quantizer_->dequantize(model, dtype, services); });
  model.clear_quantization();
}

Value QuantizerHandle::serialized_config(const TargetPlan& plan) const {
  return guarded(plugin_, "serialized_config", [&] { return quantizer_->serialized_config(plan); });
}

std::vector<std::pair<std::string, std::string>> QuantizerHandle::extra_files(
    const TargetPlan& plan) const {
  return guarded(plugin_, "extra_files", [&] { return quantizer_->extra_files(plan); });
}

}  // namespace qplug
