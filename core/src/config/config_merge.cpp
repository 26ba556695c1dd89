#include "qplug/core/config_merge.hpp"

namespace qplug {

QuantConfig merge_quantization_configs(const ConfigSchema& schema, const QuantConfig& checkpoint,
                                       const QuantConfig* user) {
  if (user == nullptr) return checkpoint;
  if (user->quant_method() != checkpoint.quant_method())
    throw ConfigError("the checkpoint is quantized with '" + checkpoint.quant_method() + "' (" +
                          checkpoint.source().str() + ") but the config asks for '" +
                          user->quant_method() +
                          "'; drop the config or use the checkpoint's method",
                      user->source(), "quant_method");
  QuantConfig merged = checkpoint;
  for (const std::string& key : user->explicitly_set()) {
    const ConfigField* field = schema.field(key);
    const Value& wanted = user->get(key);
    if (field != nullptr && field->loading_attribute) {
      merged.set(key, wanted);
      continue;
    }
    const Value& stored = checkpoint.get(key);
    if (wanted != stored)
      throw ConfigError("is " + wanted.brief() + " here but " + stored.brief() +
                            " in the checkpoint's quantization_config (" +
                            checkpoint.where(key).str() +
                            "); a quantized checkpoint's format cannot change when it is loaded: "
                            "remove the key from this config",
                        user->where(key), key);
  }
  return merged;
}

}  // namespace qplug
