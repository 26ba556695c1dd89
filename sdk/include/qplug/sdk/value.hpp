// qplug::Value: the tree that configs, config.json and safetensors headers are read into.
//
// JSON-shaped (null, bool, integer, float, string, list, map) with two things a generic JSON
// library does not give: every value remembers where it came from (file, line, column) so errors
// can point at it, and maps keep their insertion order so files are written back in the order
// upstream writes them. Integers and floats stay distinct, so 6.0 is written back as 6.0 and 128 as
// 128.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "qplug/sdk/errors.hpp"

namespace qplug {

class Value {
 public:
  enum class Kind { Null, Bool, Int, Float, String, List, Map };
  using List = std::vector<Value>;
  using Entry = std::pair<std::string, Value>;
  using Map = std::vector<Entry>;  // insertion-ordered; keys are unique

  Value() = default;  // null
  Value(bool b);      // NOLINT(google-explicit-constructor): Value v = true; reads naturally
  Value(int64_t v);   // NOLINT
  // Any other integer type (int, size_t, long long, ...) is stored as int64_t.
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                                          !std::is_same_v<T, int64_t>,
                                      int> = 0>
  Value(T v) : Value(static_cast<int64_t>(v)) {}  // NOLINT
  Value(double v);                                // NOLINT
  Value(const char* s);                           // NOLINT
  Value(std::string s);                           // NOLINT
  static Value list(List items = {});
  static Value map(Map entries = {});
  static Value string_list(const std::vector<std::string>& items);

  Kind kind() const { return kind_; }
  // "null", "bool", "integer", "float", "string", "list", "map"
  static const char* kind_name(Kind kind);
  const char* kind_name() const { return kind_name(kind_); }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_map() const { return kind_ == Kind::Map; }

  // Typed access. A kind mismatch throws ConfigError pointing at this value's location.
  bool as_bool() const;
  int64_t as_int() const;    // an Int, or a Float with an exact integral value
  double as_double() const;  // an Int or a Float
  const std::string& as_string() const;
  const List& as_list() const;
  List& as_list();
  const Map& as_map() const;
  Map& as_map();
  std::vector<std::string> as_string_list() const;

  // Map access. find() returns null when the key is absent (or this is not a map).
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Like find(), but a missing key is a ConfigError naming the key and this map's location.
  const Value& at(std::string_view key) const;
  // Replaces the value of an existing key in place (keeping its position) or appends it.
  void set(std::string key, Value value);
  bool erase(std::string_view key);
  size_t size() const;  // entries of a map, items of a list, 0 otherwise

  const SourceLocation& location() const { return location_; }
  void set_location(SourceLocation location) { location_ = std::move(location); }
  Value& located(SourceLocation location) {
    location_ = std::move(location);
    return *this;
  }

  // Structural equality, locations ignored. Int and Float compare by numeric value (6 == 6.0),
  // because a config written by Python may spell the same number either way.
  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

  // A one-line rendering for messages: JSON, strings quoted, long values shortened.
  std::string brief() const;

 private:
  [[noreturn]] void kind_error(const char* wanted) const;

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::string string_;
  List list_;
  Map map_;
  SourceLocation location_;
};

// ---- JSON, read and written the way Python's json module does ---------------------------------

struct JsonParseOptions {
  int max_depth = 128;           // deeper nesting is an error, never a stack overflow
  bool allow_non_finite = true;  // NaN, Infinity, -Infinity, as Python's json writes them
};

// Parses strict JSON (RFC 8259; duplicate keys are an error). source_name goes into locations and
// messages. Throws ConfigError with line and column on malformed input.
Value parse_json(std::string_view text, const std::string& source_name,
                 const JsonParseOptions& options = {});

struct JsonWriteOptions {
  // < 0: one line with Python's default separators ", " and ": ".
  // >= 0: pretty-printed with this indent and separators "," and ": " (json.dumps(indent=N)).
  int indent = -1;
  bool sort_keys = false;    // json.dumps(sort_keys=True)
  bool ensure_ascii = true;  // non-ASCII as \uXXXX, as Python does by default
};

// Writes JSON byte-for-byte as Python's json.dumps would for the same data, floats included
// (repr: shortest round-trip digits, "1e-05", "6.0", "NaN", "Infinity").
std::string to_json(const Value& value, const JsonWriteOptions& options = {});

// Python's repr(float): the shortest string that round-trips, in Python's layout.
std::string python_float_repr(double value);

}  // namespace qplug
