// Typed reads of config.json keys with errors that name the file and key.
#pragma once

#include <optional>
#include <string>

#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

class HfConfigReader {
 public:
  explicit HfConfigReader(const Value& config) : config_(config) {}

  int64_t require_int(const std::string& key) const { return require(key).as_int(); }
  double require_double(const std::string& key) const { return require(key).as_double(); }
  std::string require_string(const std::string& key) const { return require(key).as_string(); }

  int64_t get_int(const std::string& key, int64_t fallback) const {
    const Value* v = present(key);
    return v ? v->as_int() : fallback;
  }
  double get_double(const std::string& key, double fallback) const {
    const Value* v = present(key);
    return v ? v->as_double() : fallback;
  }
  bool get_bool(const std::string& key, bool fallback) const {
    const Value* v = present(key);
    return v ? v->as_bool() : fallback;
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    const Value* v = present(key);
    return v ? v->as_string() : fallback;
  }
  // The key's value, or null when absent or null.
  const Value* present(const std::string& key) const {
    const Value* v = config_.find(key);
    return v != nullptr && !v->is_null() ? v : nullptr;
  }
  const Value& require(const std::string& key) const {
    const Value* v = present(key);
    if (v == nullptr)
      throw ConfigError("missing from config.json; the architecture needs it", config_.location(),
                        key);
    return *v;
  }
  // A ConfigError at the key.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    const Value* v = config_.find(key);
    throw ConfigError(message, v ? v->location() : config_.location(), key);
  }

 private:
  const Value& config_;
};

}  // namespace qplug
