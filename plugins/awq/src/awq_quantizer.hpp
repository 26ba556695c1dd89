// The AWQ quantizer (transformers' AwqQuantizer with AutoAWQ's quantize): calibration through the
// host's block-by-block pipeline (awq_calibration.cpp), round-to-nearest as a baseline, and
// loading of AutoAWQ's gemm and gemv checkpoints.
#pragma once

#include <qplug/sdk/quantizer.hpp>

#include "awq_config.hpp"

namespace qplug::awq {

class AwqQuantizer final : public Quantizer {
 public:
  AwqQuantizer(const QuantConfig& config, bool pre_quantized);

  bool requires_calibration() const override { return !pre_quantized() && !settings_.rtn; }
  bool is_serializable() const override { return true; }
  bool is_trainable() const override { return false; }

  TargetingRequest targeting_request() const override;
  std::optional<std::string> unsupported_reason(const ModuleInfo& linear) const override;
  int64_t quantized_bytes(const ModuleInfo& linear) const override;
  CalibrationRequest calibration_request() const override;

  void process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                           HostServices& services) override;
  void quantize(Model& model, const TargetPlan& plan, const CalibrationData& data,
                HostServices& services) override;

  // AutoAWQ writes only config.json's quantization_config (no quantize_config.json).
  Value serialized_config(const TargetPlan& plan) const override;

 private:
  AwqSettings settings_;
};

}  // namespace qplug::awq
