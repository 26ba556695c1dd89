// Merging a pre-quantized checkpoint's quantization_config with a user's config
// (transformers' merge_quantization_configs, made strict). The rules:
//   1. No user config: the checkpoint's.
//   2. Different methods: ConfigError naming both files.
//   3. A key the user set that the schema marks as a loading attribute (GPTQ's backend,
//      max_input_length): the user's value wins.
//   4. Any other key the user set: must equal the checkpoint's value, else ConfigError naming both
//      places (a checkpoint's format cannot change at load time). transformers warns and keeps the
//      checkpoint's value; we refuse, because a silent pick hides a real mistake.
//   5. Everything else: the checkpoint's.
#pragma once

#include "qplug/sdk/config.hpp"

namespace qplug {

QuantConfig merge_quantization_configs(const ConfigSchema& schema, const QuantConfig& checkpoint,
                                       const QuantConfig* user);

}  // namespace qplug
