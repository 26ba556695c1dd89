#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

#include "qplug/sdk/config.hpp"

namespace qplug {

namespace {

// Keys the host reads itself; they may appear in any method's config.
bool is_host_key(const std::string& key) {
  return key == "quant_method" || key == "plugin_dirs";
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string format_number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return python_float_repr(v);
}

std::string describe_choices(const std::vector<Value>& choices) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i)
    out += (i ? ", " : "") + choices[i].brief();
  return out;
}

// Checks one value against its field and returns it normalised (Float for Float fields, a list
// for a single-string StringList, lower-cased when case-insensitive).
Value check_value(const ConfigField& field, const Value& given) {
  const SourceLocation& at = given.location();
  auto fail = [&](const std::string& message) -> void {
    throw ConfigError(message, at, field.key);
  };
  if (given.is_null()) {
    if (!field.nullable)
      fail("must not be null (expected " + std::string(to_string(field.type)) + ")");
    return given;
  }
  auto type_error = [&]() {
    fail("expected " + std::string(to_string(field.type)) + ", got " + given.kind_name() + " " +
         given.brief());
  };
  Value out = given;
  switch (field.type) {
    case FieldType::Bool:
      if (!given.is_bool()) type_error();
      break;
    case FieldType::Int:
      if (given.is_float() && std::floor(given.as_double()) == given.as_double() &&
          std::fabs(given.as_double()) < 9e15) {
        out = Value(static_cast<int64_t>(given.as_double()));
        out.set_location(at);
      } else if (!given.is_int()) {
        type_error();
      }
      break;
    case FieldType::Float:
      if (!given.is_number()) type_error();
      out = Value(given.as_double());
      out.set_location(at);
      break;
    case FieldType::String:
      if (!given.is_string()) type_error();
      if (field.case_insensitive) {
        out = Value(lower(given.as_string()));
        out.set_location(at);
      }
      break;
    case FieldType::StringList:
      if (given.is_string()) {
        out = Value::list({given});
        out.set_location(at);
      } else if (given.is_list()) {
        for (const auto& item : given.as_list())
          if (!item.is_string())
            throw ConfigError("expected a list of strings, but an item is " +
                                  std::string(item.kind_name()) + " " + item.brief(),
                              item.location(), field.key);
      } else {
        type_error();
      }
      break;
    case FieldType::Any:
      break;
  }
  if (out.is_number()) {
    const double v = out.as_double();
    if ((field.min && v < *field.min) || (field.max && v > *field.max)) {
      std::string range = field.min && field.max ? "in [" + format_number(*field.min) + ", " +
                                                       format_number(*field.max) + "]"
                          : field.min ? ">= " + format_number(*field.min)
                                      : "<= " + format_number(*field.max);
      fail("must be " + range + ", got " + out.brief());
    }
  }
  if (!field.choices.empty()) {
    const bool allowed = std::any_of(field.choices.begin(), field.choices.end(),
                                     [&](const Value& c) { return c == out; });
    if (!allowed)
      fail("must be one of " + describe_choices(field.choices) + ", got " + out.brief());
  }
  return out;
}

}  // namespace

const char* to_string(FieldType type) {
  switch (type) {
    case FieldType::Bool:
      return "a bool";
    case FieldType::Int:
      return "an integer";
    case FieldType::Float:
      return "a number";
    case FieldType::String:
      return "a string";
    case FieldType::StringList:
      return "a list of strings";
    case FieldType::Any:
      return "any value";
  }
  return "?";
}

ConfigField& ConfigField::range(double lo, double hi) {
  min = lo;
  max = hi;
  return *this;
}
ConfigField& ConfigField::at_least(double lo) {
  min = lo;
  return *this;
}
ConfigField& ConfigField::one_of(std::vector<Value> allowed) {
  choices = std::move(allowed);
  return *this;
}
ConfigField& ConfigField::allow_null() {
  nullable = true;
  return *this;
}
ConfigField& ConfigField::alias(std::string other) {
  aliases.push_back(std::move(other));
  return *this;
}
ConfigField& ConfigField::ignore_case() {
  case_insensitive = true;
  return *this;
}
ConfigField& ConfigField::loading() {
  loading_attribute = true;
  return *this;
}
ConfigField& ConfigField::must_be_set() {
  required = true;
  return *this;
}

ConfigSchema::ConfigSchema(std::string quant_method, std::string summary)
    : quant_method_(std::move(quant_method)), summary_(std::move(summary)) {}

ConfigField& ConfigSchema::add(std::string key, FieldType type, Value default_value,
                               std::string help) {
  ConfigField field;
  field.key = std::move(key);
  field.type = type;
  field.default_value = std::move(default_value);
  field.help = std::move(help);
  fields_.push_back(std::move(field));
  return fields_.back();
}

void ConfigSchema::add_check(std::function<void(const QuantConfig&)> check) {
  checks_.push_back(std::move(check));
}

void ConfigSchema::add_normalizer(std::function<void(QuantConfig&)> normalizer) {
  normalizers_.push_back(std::move(normalizer));
}

const ConfigField* ConfigSchema::field(const std::string& key) const {
  for (const auto& f : fields_) {
    if (f.key == key) return &f;
    if (std::find(f.aliases.begin(), f.aliases.end(), key) != f.aliases.end()) return &f;
  }
  return nullptr;
}

QuantConfig ConfigSchema::validate(const Value& raw, bool allow_unknown) const {
  if (!raw.is_map())
    throw ConfigError(std::string("a config must be a map of keys, got ") + raw.kind_name(),
                      raw.location());
  // Pass 1: every given key is known (or ignorable) and valid.
  std::vector<std::pair<const ConfigField*, Value>> given;
  std::vector<std::string> ignored;
  for (const auto& [key, value] : raw.as_map()) {
    if (is_host_key(key)) continue;
    const ConfigField* f = field(key);
    if (f == nullptr) {
      if (allow_unknown) {
        ignored.push_back(key);
        continue;
      }
      std::string message = "unknown key for quant_method '" + quant_method_ + "'";
      const ConfigField* closest = nullptr;
      size_t best = 4;  // suggest only close spellings
      for (const auto& candidate : fields_) {
        const size_t d = edit_distance(lower(key), lower(candidate.key));
        if (d < best) best = d, closest = &candidate;
      }
      if (closest != nullptr) message += "; did you mean '" + closest->key + "'?";
      message += " Known keys:";
      for (const auto& candidate : fields_)
        message += " " + candidate.key;
      throw ConfigError(message, value.location(), key);
    }
    Value checked = check_value(*f, value);
    for (const auto& [other_field, other_value] : given) {
      if (other_field != f) continue;
      // The key and an alias both given: fine only if they agree.
      if (other_value != checked)
        throw ConfigError("given twice (as '" + f->key + "' and an alias) with different values " +
                              other_value.brief() + " and " + checked.brief() + "; keep one",
                          value.location(), key);
    }
    given.emplace_back(f, std::move(checked));
  }
  // Pass 2: assemble in schema order with defaults.
  Value values = Value::map();
  std::vector<std::string> set_keys;
  for (const auto& f : fields_) {
    auto it = std::find_if(given.begin(), given.end(),
                           [&](const auto& entry) { return entry.first == &f; });
    if (it != given.end()) {
      values.set(f.key, it->second);
      set_keys.push_back(f.key);
    } else if (f.required) {
      throw ConfigError(
          "missing; it is required for quant_method '" + quant_method_ + "' (" + f.help + ")",
          raw.location(), f.key);
    } else {
      values.set(f.key, f.default_value);
    }
  }
  QuantConfig config(quant_method_, std::move(values), std::move(set_keys), raw.location());
  config.set_ignored_keys(std::move(ignored));
  for (const auto& normalize : normalizers_)
    normalize(config);
  for (const auto& check : checks_)
    check(config);
  return config;
}

bool is_valid_quant_method(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

}  // namespace qplug
