// The host's handle on a plugin's quantizer. Every call goes through the guard (plugin exceptions
// come out as host-owned qplug errors naming the plugin), and the handle keeps the plugin's library
// loaded, so it may outlive the PluginHost that created it.
//
// preprocess_model / postprocess_model are transformers' HfQuantizer steps; the plugin implements
// the process_model_before/after_weight_loading hooks they call.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qplug/sdk/calibration.hpp"
#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/model_description.hpp"
#include "qplug/sdk/quantizer.hpp"
#include "qplug/sdk/targeting.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

class Model;
class HostServices;
class Registry;

class QuantizerHandle {
 public:
  QuantizerHandle(std::shared_ptr<Quantizer> quantizer, std::string plugin,
                  std::shared_ptr<const Registry> registry);

  const std::string& plugin() const { return plugin_; }
  const std::string& quant_method() const;
  const QuantConfig& config() const;
  bool pre_quantized() const;
  bool requires_calibration() const;
  bool is_serializable() const;
  bool is_trainable() const;

  void validate_environment(const Environment& env) const;
  std::optional<DType> update_dtype(std::optional<DType> requested) const;
  TargetingRequest targeting_request() const;

  // Core targeting for this quantizer: its request, its shape constraints and sizes.
  TargetPlan plan(const ModelDescription& model) const;

  // Marks the model quantized, applies module patches (pre-quantized only), plans targets, and
  // runs the plugin's before-weight-loading step. A plan with Unsupported layers is refused with
  // a ConfigError listing them and the key to add them to.
  TargetPlan preprocess_model(Model& model, HostServices& services) const;
  void postprocess_model(Model& model, HostServices& services) const;
  void quantize(Model& model, const TargetPlan& plan, const CalibrationData& data,
                HostServices& services) const;
  // A calibration method on a loaded dense model: preprocess_model, quantize, postprocess_model.
  TargetPlan quantize_model(Model& model, const CalibrationData& data,
                            HostServices& services) const;
  CalibrationRequest calibration_request() const;
  // Back to dense; clears the model's quantization state (HfQuantizer.dequantize).
  void dequantize(Model& model, DType dtype, HostServices& services) const;

  Value serialized_config(const TargetPlan& plan) const;
  std::vector<std::pair<std::string, std::string>> extra_files(const TargetPlan& plan) const;

 private:
  std::shared_ptr<Quantizer> quantizer_;
  std::string plugin_;
  std::shared_ptr<const Registry> registry_;
};

}  // namespace qplug
