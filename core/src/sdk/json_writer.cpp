// JSON output that is byte-identical to Python 3's json.dumps, so files qplug writes (configs,
// safetensors headers) diff cleanly against the ones upstream Python tools write.

#include "qplug/sdk/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace qplug {

namespace {

// ---- repr(float) -------------------------------------------------------------------------------

struct ShortestDigits {
  bool negative = false;
  std::string digits;  // significant digits, no leading zeros ("0" for zero)
  int exponent = 0;    // decimal exponent of the first digit: value = d.ddd * 10^exponent
};

// std::to_chars without a precision gives the shortest digits that round-trip, the same digits
// Python's repr uses; only the layout differs, so split them out of the scientific form.
ShortestDigits shortest_digits(double value) {
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string_view text(buf, static_cast<size_t>(result.ptr - buf));  // "-1.2345e+02"
  ShortestDigits out;
  if (!text.empty() && text.front() == '-') {
    out.negative = true;
    text.remove_prefix(1);
  }
  const size_t e = text.find('e');
  for (char c : text.substr(0, e))
    if (c != '.') out.digits += c;
  std::string_view exp = text.substr(e + 1);
  if (!exp.empty() && exp.front() == '+') exp.remove_prefix(1);
  std::from_chars(exp.data(), exp.data() + exp.size(), out.exponent);
  return out;
}

// "123.45", "6.0", "0.0001": Python writes at least one digit after the point.
std::string positional(const ShortestDigits& d) {
  const int n = static_cast<int>(d.digits.size());
  if (d.exponent < 0)
    return "0." + std::string(static_cast<size_t>(-d.exponent - 1), '0') + d.digits;
  const int integer_digits = d.exponent + 1;
  if (n <= integer_digits)
    return d.digits + std::string(static_cast<size_t>(integer_digits - n), '0') + ".0";
  return d.digits.substr(0, static_cast<size_t>(integer_digits)) + "." +
         d.digits.substr(static_cast<size_t>(integer_digits));
}

// "1e-05", "1.5e+16": no ".0", an explicit exponent sign and at least two exponent digits.
std::string scientific(const ShortestDigits& d) {
  std::string out = d.digits.substr(0, 1);
  if (d.digits.size() > 1) out += "." + d.digits.substr(1);
  out += d.exponent < 0 ? "e-" : "e+";
  const int magnitude = std::abs(d.exponent);
  if (magnitude < 10) out += '0';
  return out + std::to_string(magnitude);
}

// ---- strings -----------------------------------------------------------------------------------

const char kHex[] = "0123456789abcdef";

void append_u_escape(uint32_t unit, std::string& out) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4)
    out += kHex[(unit >> shift) & 0xF];
}

// The escapes Python uses for the characters it always escapes; 0 for those it writes as \u00XX.
char short_escape(unsigned char c) {
  switch (c) {
    case '"':
      return '"';
    case '\\':
      return '\\';
    case '\n':
      return 'n';
    case '\r':
      return 'r';
    case '\t':
      return 't';
    case '\b':
      return 'b';
    case '\f':
      return 'f';
    default:
      return 0;
  }
}

// Decodes one well-formed UTF-8 sequence at s[i]; returns its length, or 0 when the bytes there
// are not well-formed (overlong, surrogate, above U+10FFFF, truncated).
size_t decode_utf8(const std::string& s, size_t i, uint32_t& code_point) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
  } else {
    return 0;  // ASCII is handled by the caller; 0x80..0xC1 and 0xF5.. never lead
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};  // shortest form per length
  code_point = lead & (0x7F >> length);
  if (i + length > s.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
  if (code_point < kMin[length] || code_point > 0x10FFFF || surrogate) return 0;
  return length;
}

// ensure_ascii: everything outside 0x20..0x7e is escaped, astral code points as surrogate pairs.
// Bytes that are not UTF-8 (a Python str can never hold them) are written as U+FFFD.
void append_ascii_string(const std::string& s, std::string& out) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (char e = short_escape(c)) {
      out += '\\';
      out += e;
      ++i;
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x80) {
      append_u_escape(c, out);
      ++i;
    } else {
      uint32_t cp = 0;
      const size_t length = decode_utf8(s, i, cp);
      if (length == 0) cp = 0xFFFD;
      if (cp > 0xFFFF) {
        cp -= 0x10000;
        append_u_escape(0xD800 + (cp >> 10), out);
        append_u_escape(0xDC00 + (cp & 0x3FF), out);
      } else {
        append_u_escape(cp, out);
      }
      i += length == 0 ? 1 : length;
    }
  }
}

// ensure_ascii=False: only '"', '\\' and C0 control characters are escaped (DEL goes out raw).
void append_raw_string(const std::string& s, std::string& out) {
  size_t run = 0;  // start of the bytes not yet copied; copied in runs, not byte by byte
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s, run, i - run);
    if (char e = short_escape(c)) {
      out += '\\';
      out += e;
    } else {
      append_u_escape(c, out);
    }
    run = i + 1;
  }
  out.append(s, run, std::string::npos);
}

// ---- the writer --------------------------------------------------------------------------------

class JsonWriter {
 public:
  explicit JsonWriter(const JsonWriteOptions& options) : options_(options) {}

  std::string take() { return std::move(out_); }

  void write(const Value& v, int level) {
    switch (v.kind()) {
      case Value::Kind::Null:
        out_ += "null";
        return;
      case Value::Kind::Bool:
        out_ += v.as_bool() ? "true" : "false";
        return;
      case Value::Kind::Int:
        out_ += std::to_string(v.as_int());
        return;
      case Value::Kind::Float:
        write_float(v.as_double());
        return;
      case Value::Kind::String:
        write_string(v.as_string());
        return;
      case Value::Kind::List:
        write_list(v.as_list(), level);
        return;
      case Value::Kind::Map:
        write_map(v.as_map(), level);
        return;
    }
  }

 private:
  bool pretty() const { return options_.indent >= 0; }

  // What json.dumps writes for float('nan') and the infinities (not valid JSON, but Python's).
  void write_float(double d) {
    if (std::isnan(d)) {
      out_ += "NaN";
    } else if (std::isinf(d)) {
      out_ += d > 0 ? "Infinity" : "-Infinity";
    } else {
      out_ += python_float_repr(d);
    }
  }

  void write_string(const std::string& s) {
    out_ += '"';
    if (options_.ensure_ascii) {
      append_ascii_string(s, out_);
    } else {
      append_raw_string(s, out_);
    }
    out_ += '"';
  }

  void newline(int level) {
    out_ += '\n';
    out_.append(static_cast<size_t>(options_.indent) * static_cast<size_t>(level), ' ');
  }

  // Before the item at index i: Python's item separator, then (pretty) a line break.
  void separator(size_t i, int level) {
    if (i > 0) out_ += pretty() ? "," : ", ";
    if (pretty()) newline(level);
  }

  void write_list(const Value::List& items, int level) {
    if (items.empty()) {
      out_ += "[]";
      return;
    }
    out_ += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      separator(i, level + 1);
      write(items[i], level + 1);
    }
    if (pretty()) newline(level);
    out_ += ']';
  }

  void write_map(const Value::Map& entries, int level) {
    if (entries.empty()) {
      out_ += "{}";
      return;
    }
    std::vector<const Value::Entry*> order;
    order.reserve(entries.size());
    for (const auto& entry : entries)
      order.push_back(&entry);
    // Byte order of UTF-8 is code point order, which is how Python sorts str keys.
    if (options_.sort_keys)
      std::sort(order.begin(), order.end(),
                [](const Value::Entry* a, const Value::Entry* b) { return a->first < b->first; });
    out_ += '{';
    for (size_t i = 0; i < order.size(); ++i) {
      separator(i, level + 1);
      write_string(order[i]->first);
      out_ += ": ";
      write(order[i]->second, level + 1);
    }
    if (pretty()) newline(level);
    out_ += '}';
  }

  JsonWriteOptions options_;
  std::string out_;
};

}  // namespace

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  const ShortestDigits d = shortest_digits(value);
  // Python's float_repr_style "short": positional for exponents in [-4, 16).
  const bool use_positional = d.exponent >= -4 && d.exponent < 16;
  return (d.negative ? "-" : "") + (use_positional ? positional(d) : scientific(d));
}

std::string to_json(const Value& value, const JsonWriteOptions& options) {
  JsonWriter writer(options);
  writer.write(value, 0);
  return writer.take();
}

}  // namespace qplug
