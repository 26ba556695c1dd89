// AWQ's config keys, defaults and rules (transformers' AwqConfig and AutoAWQ's quant_config,
// FORMATS.md D.5), and the quantization_config written back into config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/targeting.hpp>

namespace qplug::awq {

ConfigSchema make_schema();

// The two on-disk layouts qplug reads and writes (FORMATS.md D.4).
enum class AwqVersion { Gemm, Gemv };

struct AwqSettings {
  int bits = 4;
  int64_t group_size = 128;  // -1: one group per row
  bool zero_point = true;
  AwqVersion version = AwqVersion::Gemm;
  bool duo_scaling = true;
  bool apply_clip = true;
  int n_grid = 20;
  int64_t max_calib_samples = 128;
  int64_t max_calib_seq_len = 512;
  std::optional<std::string> dataset;
  bool rtn = false;  // round-to-nearest in AWQ's layout, no calibration (a baseline)
};
AwqSettings settings_of(const QuantConfig& config);

// "gemm" or "gemv", as transformers writes `version`.
const char* to_string(AwqVersion version);

// config.json's quantization_config as AutoAWQ's to_transformers_dict writes it: quant_method,
// zero_point, group_size, bits, version (lower case) and modules_to_not_convert (the linears the
// plan kept dense that a loader would otherwise convert, or null).
Value transformers_config(const QuantConfig& config, const TargetPlan& plan);

}  // namespace qplug::awq
