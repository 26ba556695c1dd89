// GPTQConfig's keys, defaults and rules (transformers v5 / optimum / GPTQModel), and the configs
// written back: config.json's quantization_config and quantize_config.json.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/targeting.hpp>

namespace qplug::gptq {

ConfigSchema make_schema();

struct GptqSettings {
  int bits = 4;
  int64_t group_size = 128;  // -1: one group per row
  double damp_percent = 0.1;
  bool desc_act = false;
  bool sym = true;
  bool true_sequential = true;
  bool static_groups = false;
  bool mse = false;
  bool v1 = true;    // format gptq (zero - 1 stored) rather than gptq_v2
  bool rtn = false;  // round-to-nearest in GPTQ's layout, no calibration (a baseline)
  std::optional<std::string> block_name_to_quantize;
  // modules_in_block_to_quantize: the sub-lists, in order (empty = every linear of the block).
  std::vector<std::vector<std::string>> modules_in_block;
};
GptqSettings settings_of(const QuantConfig& config);

// quantization_config as transformers' GPTQConfig.to_dict writes it after optimum quantized.
Value transformers_config(const QuantConfig& config, const TargetPlan& plan);
// quantize_config.json as GPTQModel writes it (vLLM reads `dynamic` for the layers kept dense).
Value gptqmodel_config(const QuantConfig& config, const TargetPlan& plan);

}  // namespace qplug::gptq
