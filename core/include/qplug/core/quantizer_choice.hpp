// Which quantizer applies, as transformers' get_hf_quantizer decides: a checkpoint whose
// config.json has a quantization_config is pre-quantized and its config is merged with the user's
// (config_merge.hpp); otherwise the user's config picks the method.
#pragma once

#include <string>
#include <vector>

#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_handle.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

// user_config may be null (loading a quantized checkpoint as it is). Throws ConfigError when there
// is neither, or they conflict; PluginLoadError when no plugin provides the method.
QuantizerHandle choose_quantizer(const PluginHost& host, const Value& hf_config,
                                 const Value* user_config);

// True when config.json carries a quantization_config.
bool is_pre_quantized(const Value& hf_config);

// The config's plugin_dirs (a string or a list), relative ones resolved against the directory of
// the config file. Throws ConfigError on a wrong type.
std::vector<std::string> config_plugin_dirs(const Value& user_config);

}  // namespace qplug
