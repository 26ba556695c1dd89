// A strict RFC 8259 JSON reader that records where every value starts. Linear in the input size
// (safetensors headers reach 100 MB) and recursive only to options.max_depth.

#include "qplug/sdk/value.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace qplug {

namespace {

// Objects up to this size are checked for duplicate keys by scanning; larger ones get a hash index.
constexpr size_t kLinearKeyScan = 16;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// How a character is shown in a message: 'x' when printable, otherwise its byte value.
std::string describe(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
  static const char hex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + hex[u >> 4] + hex[u & 0xF];
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_high_surrogate(uint32_t u) {
  return u >= 0xD800 && u <= 0xDBFF;
}
bool is_low_surrogate(uint32_t u) {
  return u >= 0xDC00 && u <= 0xDFFF;
}

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& source_name, const JsonParseOptions& options)
      : text_(text), file_(std::make_shared<const std::string>(source_name)), options_(options) {}

  Value parse_document() {
    skip_bom();
    skip_whitespace();
    if (at_end()) fail("empty input", Mark{1, 1});
    Value value = parse_value(0);
    skip_whitespace();
    if (!at_end()) fail("unexpected data after the JSON value");
    return value;
  }

 private:
  // A position the parser has passed, remembered for a later message.
  struct Mark {
    int line;
    int column;
  };

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  Mark mark() const { return {line_, static_cast<int>(pos_ - line_start_) + 1}; }
  SourceLocation location(Mark m) const { return SourceLocation{file_, m.line, m.column}; }

  [[noreturn]] void fail(const std::string& message, Mark where) const {
    throw ConfigError(message, location(where));
  }
  [[noreturn]] void fail(const std::string& message) const { fail(message, mark()); }

  // Columns count from after the BOM: an editor shows the first character as column 1.
  void skip_bom() {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = line_start_ = 3;
  }

  // Strings cannot hold a raw newline, so lines only advance here.
  void skip_whitespace() {
    for (; !at_end(); ++pos_) {
      const char c = peek();
      if (c == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        return;
      }
    }
  }

  Value parse_value(int depth) {
    if (at_end()) fail("unexpected end of input, expected a value");
    const Mark start = mark();
    Value value = parse_unlocated(depth);
    value.set_location(location(start));
    return value;
  }

  Value parse_unlocated(int depth) {
    switch (peek()) {
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_list(depth + 1);
      case '"':
        return Value(parse_string());
      default:
        return parse_scalar();
    }
  }

  void check_depth(int depth) const {
    if (depth > options_.max_depth)
      fail("nesting deeper than " + std::to_string(options_.max_depth));
  }

  // ---- containers ------------------------------------------------------------------------------

  // Moves the items a container gathered on a stack (above base) into an exactly sized vector.
  template <typename T>
  static std::vector<T> take_from(std::vector<T>& stack, size_t base) {
    std::vector<T> out(std::make_move_iterator(stack.begin() + static_cast<ptrdiff_t>(base)),
                       std::make_move_iterator(stack.end()));
    stack.erase(stack.begin() + static_cast<ptrdiff_t>(base), stack.end());
    return out;
  }

  Value parse_list(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    const size_t base = item_stack_.size();
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return Value::list();
    }
    while (true) {
      skip_whitespace();
      item_stack_.push_back(parse_value(depth));
      skip_whitespace();
      if (at_end()) fail("unexpected end of input, expected ',' or ']' after a list item");
      if (peek() == ']') break;
      if (peek() != ',') fail("expected ',' or ']' after a list item");
      const Mark comma = mark();
      ++pos_;
      skip_whitespace();
      if (!at_end() && peek() == ']') fail("trailing comma", comma);
    }
    ++pos_;  // ']'
    return Value::list(take_from(item_stack_, base));
  }

  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    const size_t base = entry_stack_.size();
    KeyIndex keys(key_lines_);
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return Value::map();
    }
    while (true) {
      skip_whitespace();
      if (at_end()) fail("unexpected end of input, expected an object key");
      if (peek() != '"') fail("expected a string key, got " + describe(peek()));
      const Mark key_mark = mark();
      std::string key = parse_string();
      keys.add(key, Entries{entry_stack_.data() + base, entry_stack_.size() - base}, key_mark,
               *this);
      skip_whitespace();
      if (at_end() || peek() != ':') fail("expected ':' after an object key");
      ++pos_;
      skip_whitespace();
      Value value = parse_value(depth);
      entry_stack_.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (at_end()) fail("unexpected end of input, expected ',' or '}' after an object member");
      if (peek() == '}') break;
      if (peek() != ',') fail("expected ',' or '}' after an object member");
      const Mark comma = mark();
      ++pos_;
      skip_whitespace();
      if (!at_end() && peek() == '}') fail("trailing comma", comma);
    }
    ++pos_;  // '}'
    return Value::map(take_from(entry_stack_, base));
  }

  // The entries an object has read so far (they sit on entry_stack_).
  struct Entries {
    const Value::Entry* data;
    size_t size;
    const std::string& key(size_t i) const { return data[i].first; }
  };

  // Duplicate-key detection for one object: a scan while it is small, then a hash index, so a
  // header with 100k tensor entries stays linear. The index is open addressing over entry indices
  // (no key copies, one allocation). Key lines live on a stack shared by all open objects, like
  // their entries.
  class KeyIndex {
   public:
    explicit KeyIndex(std::vector<int>& lines) : lines_(lines), base_(lines.size()) {}
    ~KeyIndex() { lines_.resize(base_); }
    KeyIndex(const KeyIndex&) = delete;
    KeyIndex& operator=(const KeyIndex&) = delete;

    // Records key, about to become entry number entries.size(); a duplicate is an error there.
    void add(const std::string& key, Entries entries, Mark key_mark, const JsonParser& parser) {
      const size_t previous = find(key, entries);
      if (previous != kNone) {
        parser.fail("duplicate key '" + key + "' (first at line " +
                        std::to_string(lines_[base_ + previous]) + ")",
                    key_mark);
      }
      lines_.push_back(key_mark.line);
      const size_t count = entries.size + 1;
      if (count < kLinearKeyScan) return;
      if (2 * count > slots_.size()) {
        rebuild(entries, key);
      } else {
        insert(key, entries.size);
      }
    }

   private:
    static constexpr size_t kNone = static_cast<size_t>(-1);

    static size_t hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

    size_t find(const std::string& key, Entries entries) const {
      if (slots_.empty()) {
        for (size_t i = 0; i < entries.size; ++i)
          if (entries.key(i) == key) return i;
        return kNone;
      }
      const size_t mask = slots_.size() - 1;
      for (size_t slot = hash(key) & mask; slots_[slot] != 0; slot = (slot + 1) & mask)
        if (entries.key(slots_[slot] - 1) == key) return slots_[slot] - 1;
      return kNone;
    }

    // Stores index + 1 (0 marks an empty slot) in the first free slot from key's hash.
    void insert(std::string_view key, size_t index) {
      const size_t mask = slots_.size() - 1;
      size_t slot = hash(key) & mask;
      while (slots_[slot] != 0)
        slot = (slot + 1) & mask;
      slots_[slot] = index + 1;
    }

    // Grows the table (kept at most half full) and re-inserts every key, the new one included.
    void rebuild(Entries entries, const std::string& new_key) {
      size_t capacity = 64;
      while (capacity < 4 * (entries.size + 1))
        capacity *= 2;
      slots_.assign(capacity, 0);
      for (size_t i = 0; i < entries.size; ++i)
        insert(entries.key(i), i);
      insert(new_key, entries.size);
    }

    std::vector<int>& lines_;
    size_t base_;
    std::vector<size_t> slots_;
  };

  // ---- strings ---------------------------------------------------------------------------------

  // At the opening quote. Plain bytes are copied in runs, not one append per character.
  std::string parse_string() {
    const Mark open = mark();
    ++pos_;
    std::string out;
    size_t run = pos_;
    while (true) {
      if (at_end()) fail("unterminated string", open);
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"' || c == '\\' || c < 0x20) {
        out.append(text_.data() + run, pos_ - run);
        if (c == '"') break;
        if (c < 0x20) fail("control character in string (" + describe(peek()) + ")");
        parse_escape(out);
        run = pos_;
      } else {
        ++pos_;
      }
    }
    ++pos_;  // closing quote
    return out;
  }

  // At a backslash; appends the decoded character.
  void parse_escape(std::string& out) {
    const Mark backslash = mark();
    ++pos_;
    if (at_end()) fail("unterminated string", backslash);
    const char c = peek();
    ++pos_;
    switch (c) {
      case '"':
        out += '"';
        return;
      case '\\':
        out += '\\';
        return;
      case '/':
        out += '/';
        return;
      case 'b':
        out += '\b';
        return;
      case 'f':
        out += '\f';
        return;
      case 'n':
        out += '\n';
        return;
      case 'r':
        out += '\r';
        return;
      case 't':
        out += '\t';
        return;
      case 'u':
        append_utf8(parse_unicode_escape(backslash), out);
        return;
      default:
        break;
    }
    if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F)
      fail("invalid escape '\\" + std::string(1, c) + "'", backslash);
    fail("invalid escape: backslash followed by " + describe(c), backslash);
  }

  // After "\u": four hex digits, and for a high surrogate the "\uDC00".."\uDFFF" that must follow.
  uint32_t parse_unicode_escape(Mark backslash) {
    const uint32_t unit = parse_hex4(backslash);
    if (is_low_surrogate(unit)) fail("unpaired surrogate", backslash);
    if (!is_high_surrogate(unit)) return unit;
    if (text_.substr(pos_, 2) != "\\u") fail("unpaired surrogate", backslash);
    const Mark second = mark();
    pos_ += 2;
    const uint32_t low = parse_hex4(second);
    if (!is_low_surrogate(low)) fail("unpaired surrogate", backslash);
    return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
  }

  uint32_t parse_hex4(Mark escape) {
    uint32_t unit = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (at_end() || !std::isxdigit(static_cast<unsigned char>(peek())))
        fail("invalid \\u escape (expected 4 hex digits)", escape);
      const char c = peek();
      const uint32_t digit = is_digit(c) ? c - '0' : (std::tolower(c) - 'a' + 10);
      unit = unit * 16 + digit;
    }
    return unit;
  }

  // ---- numbers and literals --------------------------------------------------------------------

  Value parse_scalar() {
    const char c = peek();
    const Mark start = mark();
    if (c == '-' || is_digit(c)) return parse_number();
    if (consume_word("true")) return Value(true);
    if (consume_word("false")) return Value(false);
    if (consume_word("null")) return Value();
    if (consume_word("NaN"))
      return non_finite("NaN", std::numeric_limits<double>::quiet_NaN(), start);
    if (consume_word("Infinity"))
      return non_finite("Infinity", std::numeric_limits<double>::infinity(), start);
    fail("expected a value, got " + describe(c));
  }

  bool consume_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // Python's json writes these for non-finite floats.
  Value non_finite(const char* word, double value, Mark start) const {
    if (!options_.allow_non_finite)
      fail(std::string(word) + " is not valid JSON (non-finite numbers are not allowed)", start);
    return Value(value);
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  Value parse_number() {
    const size_t start = pos_;
    const Mark start_mark = mark();
    if (peek() == '-') {
      ++pos_;
      if (consume_word("Infinity"))
        return non_finite("-Infinity", -std::numeric_limits<double>::infinity(), start_mark);
      if (at_end() || !is_digit(peek())) fail("expected a digit after '-'");
    }
    if (peek() == '0' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1]))
      fail("leading zeros are not allowed");
    skip_digits();
    bool is_float = false;
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (at_end() || !is_digit(peek())) fail("expected a digit after the decimal point");
      skip_digits();
      is_float = true;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) fail("expected a digit in the exponent");
      skip_digits();
      is_float = true;
    }
    const std::string_view literal = text_.substr(start, pos_ - start);
    return is_float ? Value(to_double(literal, start_mark)) : Value(to_int(literal, start_mark));
  }

  void skip_digits() {
    while (!at_end() && is_digit(peek()))
      ++pos_;
  }

  int64_t to_int(std::string_view literal, Mark where) const {
    int64_t value = 0;
    auto result = std::from_chars(literal.data(), literal.data() + literal.size(), value);
    if (result.ec != std::errc()) fail("integer out of range", where);
    return value;
  }

  double to_double(std::string_view literal, Mark where) const {
    double value = 0;
    auto result = std::from_chars(literal.data(), literal.data() + literal.size(), value);
    if (result.ec == std::errc()) {
      if (std::isinf(value)) fail("number out of range (overflows a double)", where);
      return value;
    }
    // Out of range is either overflow or underflow; Python reads an underflow as 0.0.
    if (leading_digit_exponent(literal) > 0)
      fail("number out of range (overflows a double)", where);
    return literal.front() == '-' ? -0.0 : 0.0;
  }

  // The decimal exponent of the first significant digit of a valid JSON number literal (saturated),
  // enough to tell an overflow (huge positive) from an underflow (huge negative).
  static int64_t leading_digit_exponent(std::string_view literal) {
    const size_t e = literal.find_first_of("eE");
    std::string_view mantissa = literal.substr(0, e);
    int64_t exponent = 0;
    if (e != std::string_view::npos) {
      std::string_view digits = literal.substr(e + 1);
      if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
      auto result = std::from_chars(digits.data(), digits.data() + digits.size(), exponent);
      if (result.ec != std::errc())  // saturate: only the sign matters beyond int64
        exponent = digits.front() == '-' ? std::numeric_limits<int32_t>::min()
                                         : std::numeric_limits<int32_t>::max();
    }
    const size_t first = mantissa.find_first_of("123456789");
    if (first == std::string_view::npos) return std::numeric_limits<int32_t>::min();  // zero
    const size_t point = std::min(mantissa.find('.'), mantissa.size());
    const int64_t shift = first < point ? static_cast<int64_t>(point - first) - 1
                                        : -static_cast<int64_t>(first - point);
    return exponent + shift;
  }

  std::string_view text_;
  std::shared_ptr<const std::string> file_;
  JsonParseOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
  // Items, entries and key lines of the open containers, each container's above its parent's,
  // moved into exactly sized vectors when it closes: small lists are not regrown item by item.
  std::vector<Value> item_stack_;
  std::vector<Value::Entry> entry_stack_;
  std::vector<int> key_lines_;
};

}  // namespace

Value parse_json(std::string_view text, const std::string& source_name,
                 const JsonParseOptions& options) {
  return JsonParser(text, source_name, options).parse_document();
}

}  // namespace qplug
