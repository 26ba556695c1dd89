// The bitsandbytes quantizer (transformers' Bnb4BitHfQuantizer / Bnb8BitHfQuantizer): no
// calibration; linear layers are quantized as their weights load, or a checkpoint that
// transformers + bitsandbytes wrote is loaded as it is.
#pragma once

#include <qplug/sdk/quantizer.hpp>

namespace qplug::bnb {

class BnbQuantizer final : public Quantizer {
 public:
  BnbQuantizer(const QuantConfig& config, bool pre_quantized);

  bool requires_calibration() const override { return false; }
  bool is_serializable() const override { return true; }
  bool is_trainable() const override { return false; }

  TargetingRequest targeting_request() const override;
  int64_t quantized_bytes(const ModuleInfo& linear) const override;

  void process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                           HostServices& services) override;
  Value serialized_config(const TargetPlan& plan) const override;

 private:
  bool four_bit() const { return quant_method() == "bitsandbytes_4bit"; }
};

}  // namespace qplug::bnb
