// Config schemas: each quant_method declares its keys (types, ranges, choices, defaults), and the
// host validates a user's config or a checkpoint's quantization_config against it before the plugin
// sees it. Unknown keys and wrong types are errors that name the file, line and key.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qplug/sdk/value.hpp"

namespace qplug {

enum class FieldType {
  Bool,
  Int,
  Float,  // accepts integers too (6 is a valid 6.0)
  String,
  StringList,  // a list of strings, or a single string (taken as a one-element list)
  Any,         // any JSON value (e.g. a dataset given as a name or as a list of texts)
};
const char* to_string(FieldType type);

struct ConfigField {
  std::string key;
  FieldType type = FieldType::Any;
  Value default_value;  // used when the key is absent; null with !nullable means "absent"
  bool nullable = false;
  bool required = false;
  std::optional<double> min;  // inclusive numeric range
  std::optional<double> max;
  std::vector<Value> choices;        // when non-empty, the value must equal one of these
  bool case_insensitive = false;     // strings compared and stored lower-cased ("GEMM" -> "gemm")
  std::vector<std::string> aliases;  // other spellings read as this key ("checkpoint_format")
  // Loading attributes may differ between a checkpoint's config and the user's: the user's value
  // wins (transformers' get_loading_attributes). Any other difference is a conflict.
  bool loading_attribute = false;
  std::string help;

  // Fluent setters, so schemas read as declarations.
  ConfigField& range(double lo, double hi);
  ConfigField& at_least(double lo);
  ConfigField& one_of(std::vector<Value> allowed);
  ConfigField& allow_null();
  ConfigField& alias(std::string other);
  ConfigField& ignore_case();
  ConfigField& loading();
  ConfigField& must_be_set();
};

class QuantConfig;

class ConfigSchema {
 public:
  ConfigSchema() = default;
  explicit ConfigSchema(std::string quant_method, std::string summary = {});

  ConfigField& add(std::string key, FieldType type, Value default_value, std::string help);
  // A cross-field check run after every field validated; throw ConfigError to reject.
  void add_check(std::function<void(const QuantConfig&)> check);
  // Brings equivalent spellings to one form after validation and before the checks (e.g. the
  // mirror keys transformers writes), so a config written back and read again compares equal.
  void add_normalizer(std::function<void(QuantConfig&)> normalizer);

  const std::string& quant_method() const { return quant_method_; }
  const std::string& summary() const { return summary_; }
  const std::vector<ConfigField>& fields() const { return fields_; }
  const ConfigField* field(const std::string& key) const;  // by key or alias

  // Validates raw (a map) and fills defaults. Keys the host owns (quant_method, plugin_dirs) are
  // accepted and dropped. Throws ConfigError naming the file, line and key. allow_unknown: keys
  // outside the schema are ignored (and listed in ignored_keys()) instead of rejected; for
  // quantization_config blocks other tools wrote into checkpoints.
  QuantConfig validate(const Value& raw, bool allow_unknown = false) const;

 private:
  std::string quant_method_;
  std::string summary_;
  std::vector<ConfigField> fields_;
  std::vector<std::function<void(const QuantConfig&)>> checks_;
  std::vector<std::function<void(QuantConfig&)>> normalizers_;
};

// A validated config: every schema key present (defaults filled), in schema order.
class QuantConfig {
 public:
  QuantConfig() = default;
  QuantConfig(std::string quant_method, Value values, std::vector<std::string> explicitly_set,
              SourceLocation source);

  const std::string& quant_method() const { return quant_method_; }
  const Value& values() const { return values_; }

  bool has(const std::string& key) const;          // present and not null
  const Value& get(const std::string& key) const;  // throws ConfigError if the key is unknown
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  // null -> nullopt
  std::optional<std::vector<std::string>> get_string_list(const std::string& key) const;

  // True when the key was given in the input rather than filled from the default.
  bool was_set(const std::string& key) const;
  const std::vector<std::string>& explicitly_set() const { return explicitly_set_; }
  // Keys that validate(allow_unknown=true) skipped.
  const std::vector<std::string>& ignored_keys() const { return ignored_keys_; }
  void set_ignored_keys(std::vector<std::string> keys) { ignored_keys_ = std::move(keys); }
  // Where the key's value came from (falls back to the config's own location).
  SourceLocation where(const std::string& key) const;
  const SourceLocation& source() const { return source_; }

  // A ConfigError at this key's location, for plugins' own checks.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  // Replaces a value (used when merging and by plugins that normalise values).
  void set(const std::string& key, Value value);

 private:
  std::string quant_method_;
  Value values_ = Value::map();
  std::vector<std::string> explicitly_set_;
  std::vector<std::string> ignored_keys_;
  SourceLocation source_;
};

// quant_method must be [a-z0-9_-]+: it names a registry entry, never a path.
bool is_valid_quant_method(const std::string& name);

}  // namespace qplug
