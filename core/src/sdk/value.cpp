#include "qplug/sdk/value.hpp"

#include <cmath>
#include <string>
#include <utility>

namespace qplug {

Value::Value(bool b) : kind_(Kind::Bool), bool_(b) {}
Value::Value(int64_t v) : kind_(Kind::Int), int_(v) {}
Value::Value(double v) : kind_(Kind::Float), float_(v) {}
// A null pointer gives a null value rather than undefined behaviour in std::string.
Value::Value(const char* s) : kind_(s ? Kind::String : Kind::Null), string_(s ? s : "") {}
Value::Value(std::string s) : kind_(Kind::String), string_(std::move(s)) {}

Value Value::list(List items) {
  Value v;
  v.kind_ = Kind::List;
  v.list_ = std::move(items);
  return v;
}

Value Value::map(Map entries) {
  Value v;
  v.kind_ = Kind::Map;
  v.map_ = std::move(entries);
  return v;
}

Value Value::string_list(const std::vector<std::string>& items) {
  List list;
  list.reserve(items.size());
  for (const auto& item : items)
    list.emplace_back(item);
  return Value::list(std::move(list));
}

const char* Value::kind_name(Kind kind) {
  switch (kind) {
    case Kind::Null:
      return "null";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "integer";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "string";
    case Kind::List:
      return "list";
    case Kind::Map:
      return "map";
  }
  return "unknown";
}

void Value::kind_error(const char* wanted) const {
  std::string message = std::string("expected ") + wanted + ", got " + kind_name();
  // "got null null" would say nothing more than "got null".
  if (!is_null()) message += " " + brief();
  throw ConfigError(message, location_);
}

bool Value::as_bool() const {
  if (!is_bool()) kind_error("a bool");
  return bool_;
}

namespace {
// True when d is a whole number inside int64's range. 2^63 itself is out of range, and is exactly
// representable as a double, so the upper bound is exclusive.
bool is_int64_valued(double d) {
  constexpr double kTwoTo63 = 9223372036854775808.0;
  return std::isfinite(d) && d == std::trunc(d) && d >= -kTwoTo63 && d < kTwoTo63;
}
}  // namespace

int64_t Value::as_int() const {
  if (is_int()) return int_;
  if (is_float() && is_int64_valued(float_)) return static_cast<int64_t>(float_);
  kind_error("an integer");
}

double Value::as_double() const {
  if (is_int()) return static_cast<double>(int_);
  if (!is_float()) kind_error("a number");
  return float_;
}

const std::string& Value::as_string() const {
  if (!is_string()) kind_error("a string");
  return string_;
}

const Value::List& Value::as_list() const {
  if (!is_list()) kind_error("a list");
  return list_;
}

Value::List& Value::as_list() {
  if (!is_list()) kind_error("a list");
  return list_;
}

const Value::Map& Value::as_map() const {
  if (!is_map()) kind_error("a map");
  return map_;
}

Value::Map& Value::as_map() {
  if (!is_map()) kind_error("a map");
  return map_;
}

std::vector<std::string> Value::as_string_list() const {
  if (!is_list()) kind_error("a list of strings");
  std::vector<std::string> out;
  out.reserve(list_.size());
  for (const auto& item : list_) {
    // Pointing at the offending item is more useful than pointing at the list.
    if (!item.is_string()) item.kind_error("a string in a list of strings");
    out.push_back(item.string_);
  }
  return out;
}

const Value* Value::find(std::string_view key) const {
  if (!is_map()) return nullptr;
  for (const auto& entry : map_)
    if (entry.first == key) return &entry.second;
  return nullptr;
}

Value* Value::find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value&>(*this).find(key));
}

const Value& Value::at(std::string_view key) const {
  if (!is_map()) kind_error("a map");
  if (const Value* found = find(key)) return *found;
  throw ConfigError("missing key '" + std::string(key) + "'", location_);
}

void Value::set(std::string key, Value value) {
  Map& entries = as_map();
  for (auto& entry : entries) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

bool Value::erase(std::string_view key) {
  if (!is_map()) return false;
  for (auto it = map_.begin(); it != map_.end(); ++it) {
    if (it->first == key) {
      map_.erase(it);
      return true;
    }
  }
  return false;
}

size_t Value::size() const {
  if (is_map()) return map_.size();
  if (is_list()) return list_.size();
  return 0;
}

namespace {

// Exact comparison of an integer with a double: converting the integer to double could round
// (2^53 + 1 would equal 2^53 + 0.0), so the double is converted instead when it is integral.
bool int_equals_double(int64_t i, double d) {
  return is_int64_valued(d) && static_cast<int64_t>(d) == i;
}

bool doubles_equal(double a, double b) {
  // Structural equality: a NaN read from a file equals a NaN written back (IEEE says otherwise).
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b;
}

bool numbers_equal(const Value& a, const Value& b) {
  if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
  if (a.is_int()) return int_equals_double(a.as_int(), b.as_double());
  if (b.is_int()) return int_equals_double(b.as_int(), a.as_double());
  return doubles_equal(a.as_double(), b.as_double());
}

bool lists_equal(const Value::List& a, const Value::List& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// Maps compare as Python dicts do: same keys and values, order ignored. Entries at the same index
// are tried first, so the common case (same order) costs no lookups.
bool maps_equal(const Value& a, const Value& b) {
  const Value::Map& ea = a.as_map();
  const Value::Map& eb = b.as_map();
  if (ea.size() != eb.size()) return false;
  for (size_t i = 0; i < ea.size(); ++i) {
    if (ea[i].first == eb[i].first) {
      if (ea[i].second != eb[i].second) return false;
      continue;
    }
    const Value* other = b.find(ea[i].first);
    if (!other || *other != ea[i].second) return false;
  }
  return true;
}

}  // namespace

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return numbers_equal(a, b);
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Value::Kind::Null:
      return true;
    case Value::Kind::Bool:
      return a.bool_ == b.bool_;
    case Value::Kind::String:
      return a.string_ == b.string_;
    case Value::Kind::List:
      return lists_equal(a.list_, b.list_);
    case Value::Kind::Map:
      return maps_equal(a, b);
    case Value::Kind::Int:
    case Value::Kind::Float:
      break;  // handled above
  }
  return false;
}

namespace {

constexpr size_t kBriefLimit = 80;
constexpr const char* kEllipsis = "...";

// Cuts s to at most max_bytes without splitting a UTF-8 sequence, so messages stay valid UTF-8.
void truncate_utf8(std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
    --cut;
  s.resize(cut);
}

// Messages show non-ASCII text as it is, not as \uXXXX.
const JsonWriteOptions kRawUtf8{-1, false, false};

void append_brief_string(const std::string& s, std::string& out) {
  // Only the head can show; cutting first keeps a huge string from being escaped in full.
  // A cut head keeps more than kBriefLimit bytes, so the brief is cut again and gets "...".
  std::string head = s.substr(0, kBriefLimit + 8);
  truncate_utf8(head, kBriefLimit + 4);
  out += to_json(Value(std::move(head)), kRawUtf8);
}

// Appends a compact JSON rendering of v, stopping as soon as out is longer than the brief limit:
// brief() of a 100 MB safetensors header must not serialise the whole header.
void append_brief(const Value& v, std::string& out) {
  if (out.size() > kBriefLimit) return;
  if (v.is_string()) {
    append_brief_string(v.as_string(), out);
    return;
  }
  if (v.is_list()) {
    out += '[';
    for (size_t i = 0; i < v.as_list().size() && out.size() <= kBriefLimit; ++i) {
      if (i > 0) out += ", ";
      append_brief(v.as_list()[i], out);
    }
    out += ']';
    return;
  }
  if (v.is_map()) {
    out += '{';
    for (size_t i = 0; i < v.as_map().size() && out.size() <= kBriefLimit; ++i) {
      if (i > 0) out += ", ";
      const auto& entry = v.as_map()[i];
      append_brief_string(entry.first, out);
      out += ": ";
      append_brief(entry.second, out);
    }
    out += '}';
    return;
  }
  out += to_json(v, kRawUtf8);
}

}  // namespace

std::string Value::brief() const {
  std::string out;
  append_brief(*this, out);
  if (out.size() <= kBriefLimit) return out;
  truncate_utf8(out, kBriefLimit - 3);
  return out + kEllipsis;
}

}  // namespace qplug
