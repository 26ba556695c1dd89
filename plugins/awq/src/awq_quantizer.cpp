#include "awq_quantizer.hpp"

#include <qplug/sdk/host_services.hpp>
#include <qplug/sdk/linear.hpp>
#include <qplug/sdk/model.hpp>

#include "awq_calibration.hpp"
#include "awq_kernel.hpp"
#include "quantized_layers.hpp"

namespace qplug::awq {

AwqQuantizer::AwqQuantizer(const QuantConfig& config, bool pre_quantized)
    : Quantizer(config, pre_quantized), settings_(settings_of(config)) {}

TargetingRequest AwqQuantizer::targeting_request() const {
  TargetingRequest r;
  // AutoAWQ quantizes the linears of the decoder blocks only; lm_head and the embeddings are
  // outside them by construction.
  r.only_in_blocks = true;
  r.skip_modules = config().get_string_list("modules_to_not_convert");
  r.skip_key = "modules_to_not_convert";
  // transformers' AwqQuantizer adds the default skips to the user's list.
  r.add_default_skips = true;
  return r;
}

std::optional<std::string> AwqQuantizer::unsupported_reason(const ModuleInfo& linear) const {
  return awq_layout_reason(linear.in_features, linear.out_features, settings_.group_size,
                           settings_.version);
}

int64_t AwqQuantizer::quantized_bytes(const ModuleInfo& linear) const {
  return awq_layer_bytes(linear.in_features, linear.out_features, linear.has_bias,
                         settings_.group_size, settings_.version);
}

CalibrationRequest AwqQuantizer::calibration_request() const {
  CalibrationRequest r;
  r.dataset = settings_.dataset;
  r.samples = settings_.max_calib_samples;
  r.seq_len = settings_.max_calib_seq_len;
  return r;
}

void AwqQuantizer::process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                                       HostServices& services) {
  // A calibrated model gets its kernels in quantize(), block by block; a checkpoint brings its
  // packed tensors, and round-to-nearest quantizes each weight as it arrives.
  if (!pre_quantized() && !settings_.rtn) return;
  shared::install_planned_kernels(model, plan, services, "awq", config(), pre_quantized());
}

void AwqQuantizer::quantize(Model& model, const TargetPlan& plan, const CalibrationData& data,
                            HostServices& services) {
  quantize_with_calibration(model, plan, data, settings_, config(), services);
}

Value AwqQuantizer::serialized_config(const TargetPlan& plan) const {
  return transformers_config(config(), plan);
}

}  // namespace qplug::awq
