#include <algorithm>

#include "qplug/sdk/config.hpp"

namespace qplug {

QuantConfig::QuantConfig(std::string quant_method, Value values,
                         std::vector<std::string> explicitly_set, SourceLocation source)
    : quant_method_(std::move(quant_method)),
      values_(std::move(values)),
      explicitly_set_(std::move(explicitly_set)),
      source_(std::move(source)) {}

bool QuantConfig::has(const std::string& key) const {
  const Value* v = values_.find(key);
  return v != nullptr && !v->is_null();
}

const Value& QuantConfig::get(const std::string& key) const {
  const Value* v = values_.find(key);
  if (v == nullptr)
    throw ConfigError("is not part of the config schema of quant_method '" + quant_method_ +
                          "' (a plugin asked for a key it did not declare)",
                      source_, key);
  return *v;
}

bool QuantConfig::get_bool(const std::string& key) const {
  return get(key).as_bool();
}
int64_t QuantConfig::get_int(const std::string& key) const {
  return get(key).as_int();
}
double QuantConfig::get_double(const std::string& key) const {
  return get(key).as_double();
}
std::string QuantConfig::get_string(const std::string& key) const {
  return get(key).as_string();
}

std::optional<std::vector<std::string>> QuantConfig::get_string_list(const std::string& key) const {
  const Value& v = get(key);
  if (v.is_null()) return std::nullopt;
  return v.as_string_list();
}

bool QuantConfig::was_set(const std::string& key) const {
  return std::find(explicitly_set_.begin(), explicitly_set_.end(), key) != explicitly_set_.end();
}

SourceLocation QuantConfig::where(const std::string& key) const {
  const Value* v = values_.find(key);
  if (v != nullptr && v->location().known() && was_set(key)) return v->location();
  return source_;
}

void QuantConfig::fail(const std::string& key, const std::string& message) const {
  throw ConfigError(message, where(key), key);
}

void QuantConfig::set(const std::string& key, Value value) {
  values_.set(key, std::move(value));
}

}  // namespace qplug
