// The quantizer interface, modelled on transformers' HfQuantizer. A plugin implements one per
// quant_method; the host drives the lifecycle:
//
//   validate_environment -> update_dtype -> preprocess_model (host: mark the model, apply module
//   patches when pre-quantized, plan targets; then the plugin's
//   process_model_before_weight_loading swaps kernels on the meta skeleton) -> weights stream in ->
//   postprocess_model (the plugin's process_model_after_weight_loading) -> quantize(calibration)
//   for calibration methods -> save, or dequantize.
//
// The host calls every one of these through a guard that turns any exception into a host-owned
// qplug error naming the plugin.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qplug/sdk/calibration.hpp"
#include "qplug/sdk/config.hpp"
#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/model_description.hpp"
#include "qplug/sdk/targeting.hpp"

namespace qplug {

class Model;
class HostServices;

// What the running process offers, for validate_environment.
struct Environment {
  bool cuda_available = false;
  int cuda_device_count = 0;
  std::vector<std::string> cpu_features;  // "avx2", "avx512f", "avx512_vnni", "avx512_bf16"
  std::string torch_version;              // "1.13.0"
  std::optional<std::string> device;      // the device the user asked for, if any
};

class Quantizer {
 public:
  Quantizer(QuantConfig config, bool pre_quantized);
  virtual ~Quantizer();

  const QuantConfig& config() const { return config_; }
  const std::string& quant_method() const { return config_.quant_method(); }
  bool pre_quantized() const { return pre_quantized_; }

  // ---- capabilities (HfQuantizer parity) -----------------------------------------------------
  // Needs calibration data; quantize() must run before the model is usable.
  virtual bool requires_calibration() const = 0;
  virtual bool is_serializable() const = 0;
  virtual bool is_trainable() const = 0;

  // Throw UnsupportedError when the process cannot run this method (no GPU, missing CPU feature).
  virtual void validate_environment(const Environment& env) const;
  // The dtype to build the model in, given the user's request (bnb: none -> float16 on GPU).
  virtual std::optional<DType> update_dtype(std::optional<DType> requested) const;

  // ---- targeting (decided by core from what the quantizer declares) --------------------------
  virtual TargetingRequest targeting_request() const = 0;
  // Why this method cannot convert this linear (e.g. "in_features 172 is not a multiple of
  // group_size 128"), or nullopt when it can. Such layers are reported, never skipped silently.
  virtual std::optional<std::string> unsupported_reason(const ModuleInfo& linear) const;
  // Bytes this linear will take once converted (for `qplug inspect` and summaries).
  virtual int64_t quantized_bytes(const ModuleInfo& linear) const = 0;

  // ---- lifecycle steps the plugin implements -------------------------------------------------
  // On the skeleton (meta device) before weights load: install this method's kernels on the
  // planned layers (services.make_linear_kernel), so loading either quantizes on arrival or
  // accepts the packed tensors of a pre-quantized checkpoint.
  virtual void process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                                   HostServices& services) = 0;
  virtual void process_model_after_weight_loading(Model& model, HostServices& services);
  // Calibration methods: quantize the loaded model with calibration data. Others need not
  // override it (the default throws UnsupportedError).
  virtual void quantize(Model& model, const TargetPlan& plan, const CalibrationData& data,
                        HostServices& services);
  // Calibration methods: how much data they want and from where (the config's dataset).
  virtual CalibrationRequest calibration_request() const;
  // Converts every layer this method quantized back to a dense kernel in `dtype`.
  virtual void dequantize(Model& model, DType dtype, HostServices& services);

  // ---- serialisation -----------------------------------------------------------------------
  // quantization_config as upstream writes it into config.json. `plan` is what was done.
  virtual Value serialized_config(const TargetPlan& plan) const;
  // Extra files written next to config.json (GPTQ's quantize_config.json): name -> contents.
  virtual std::vector<std::pair<std::string, std::string>> extra_files(
      const TargetPlan& plan) const;

 private:
  QuantConfig config_;
  bool pre_quantized_;
};

}  // namespace qplug
