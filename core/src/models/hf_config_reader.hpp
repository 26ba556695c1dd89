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

  int64_t require_int(const std::string& key) const { return as_int(key, require(key)); }
  double require_double(const std::string& key) const { return as_double(key, require(key)); }
  std::string require_string(const std::string& key) const { return as_string(key, require(key)); }

  int64_t get_int(const std::string& key, int64_t fallback) const {
    const Value* v = present(key);
    return v ? as_int(key, *v) : fallback;
  }
  double get_double(const std::string& key, double fallback) const {
    const Value* v = present(key);
    return v ? as_double(key, *v) : fallback;
  }
  bool get_bool(const std::string& key, bool fallback) const {
    const Value* v = present(key);
    return v ? typed(key, [&] { return v->as_bool(); }) : fallback;
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    const Value* v = present(key);
    return v ? as_string(key, *v) : fallback;
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
  // A value of the wrong kind ("hidden_size": "32") is a ConfigError that names the key too, not
  // only the value's location (which is unknown for configs built in code).
  template <class Read>
  auto typed(const std::string& key, Read read) const -> decltype(read()) {
    try {
      return read();
    } catch (const ConfigError& e) {
      if (!e.key().empty()) throw;
      throw ConfigError(e.detail(), e.where(), key);
    }
  }
  int64_t as_int(const std::string& key, const Value& v) const {
    return typed(key, [&] { return v.as_int(); });
  }
  double as_double(const std::string& key, const Value& v) const {
    return typed(key, [&] { return v.as_double(); });
  }
  std::string as_string(const std::string& key, const Value& v) const {
    return typed(key, [&] { return std::string(v.as_string()); });
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
