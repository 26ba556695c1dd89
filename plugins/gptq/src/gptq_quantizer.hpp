// The GPTQ quantizer (transformers' GptqHfQuantizer with optimum's GPTQQuantizer): calibration
// through the host's block-by-block pipeline, the GPTQ solve per layer, GPTQ v1/v2 packing; and
// loading of GPTQ checkpoints.
#pragma once

#include <qplug/sdk/quantizer.hpp>

#include "gptq_config.hpp"

namespace qplug::gptq {

class GptqQuantizer final : public Quantizer {
 public:
  GptqQuantizer(const QuantConfig& config, bool pre_quantized);

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

  Value serialized_config(const TargetPlan& plan) const override;
  std::vector<std::pair<std::string, std::string>> extra_files(
      const TargetPlan& plan) const override;

 private:
  GptqSettings settings_;
};

}  // namespace qplug::gptq
