#include "qplug/core/quantizer_choice.hpp"

#include <filesystem>

#include "qplug/core/config_merge.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

bool is_pre_quantized(const Value& hf_config) {
  const Value* q = hf_config.find("quantization_config");
  return q != nullptr && q->is_map();
}

QuantizerHandle choose_quantizer(const PluginHost& host, const Value& hf_config,
                                 const Value* user_config) {
  if (!is_pre_quantized(hf_config)) {
    if (user_config == nullptr)
      throw ConfigError(
          "the model is not quantized and no quantization config was given; pass "
          "--config with a quant_method",
          hf_config.location());
    return host.create_quantizer(host.validate_config(*user_config), /*pre_quantized=*/false);
  }
  const Value& stored = *hf_config.find("quantization_config");
  // Other tools write keys we do not model (GPTQModel's "meta", "pack_dtype", ...): tolerated in a
  // checkpoint, never in a user's config.
  const QuantConfig checkpoint = host.validate_config(stored, /*allow_unknown=*/true);
  if (user_config == nullptr) return host.create_quantizer(checkpoint, /*pre_quantized=*/true);
  const QuantConfig user = host.validate_config(*user_config);
  const QuantConfig merged =
      merge_quantization_configs(host.schema(checkpoint.quant_method()), checkpoint, &user);
  return host.create_quantizer(merged, /*pre_quantized=*/true);
}

std::vector<std::string> config_plugin_dirs(const Value& user_config) {
  const Value* dirs = user_config.find("plugin_dirs");
  if (dirs == nullptr || dirs->is_null()) return {};
  std::vector<std::string> out;
  if (dirs->is_string()) {
    out.push_back(dirs->as_string());
  } else if (dirs->is_list()) {
    for (const auto& d : dirs->as_list()) {
      if (!d.is_string())
        throw ConfigError("every entry must be a directory path (a string)", d.location(),
                          "plugin_dirs");
      out.push_back(d.as_string());
    }
  } else {
    throw ConfigError("must be a directory path or a list of them", dirs->location(),
                      "plugin_dirs");
  }
  // Relative to the config file, so a config and its plugins can travel together.
  const auto& file = user_config.location().file;
  const std::filesystem::path base =
      file ? std::filesystem::path(*file).parent_path() : std::filesystem::path();
  for (auto& d : out)
    if (std::filesystem::path(d).is_relative() && !base.empty()) d = (base / d).string();
  return out;
}

}  // namespace qplug
