// YAML configs into qplug::Value through yaml-cpp's event API: the events carry a position for
// every node (YAML::Load's nodes do not keep one we can rely on) and let duplicate keys be
// rejected, which YAML::Load silently accepts by keeping one of them.

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qplug/core/config_file.hpp"

namespace qplug {

namespace {

constexpr int kMaxDepth = 128;  // as for JSON: deep nesting is an error, not a stack overflow
// Aliases copy their anchor's tree; this bounds the copies so a "billion laughs" file fails fast.
constexpr int64_t kMaxAliasValues = 1000000;

const std::string kCoreTagPrefix = "tag:yaml.org,2002:";

// ---- YAML 1.2 core schema ----------------------------------------------------------------------

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_octal(char c) {
  return c >= '0' && c <= '7';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

template <typename Pred>
bool all_of(std::string_view s, Pred pred) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}

bool is_null_text(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

// An optional bool: 1 true, 0 false, -1 not a bool.
int bool_text(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return 1;
  if (s == "false" || s == "False" || s == "FALSE") return 0;
  return -1;
}

// Outcome of reading a scalar as a number: not a number of that kind, a number, or one that does
// not fit (which is an error rather than a fallback to a string).
enum class Parsed { No, Yes, OutOfRange };

// [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+
Parsed parse_core_int(std::string_view s, int64_t& out) {
  int base = 10;
  std::string_view digits = s;
  std::string signed_digits;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o' && all_of(s.substr(2), is_octal)) {
    base = 8;
    digits = s.substr(2);
  } else if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && all_of(s.substr(2), is_hex)) {
    base = 16;
    digits = s.substr(2);
  } else {
    std::string_view unsigned_part = s;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) unsigned_part.remove_prefix(1);
    if (!all_of(unsigned_part, is_digit)) return Parsed::No;
    if (s[0] == '+') digits = unsigned_part;  // from_chars takes '-' but not '+'
  }
  auto result = std::from_chars(digits.data(), digits.data() + digits.size(), out, base);
  return result.ec == std::errc() ? Parsed::Yes : Parsed::OutOfRange;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, rewritten as "[-]D.D[e[-]D]" so that
// std::from_chars (which takes neither '+' nor an empty side of the point) can read it.
bool canonical_decimal(std::string_view s, std::string& out) {
  size_t i = 0;
  out.clear();
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    if (s[i] == '-') out += '-';
    ++i;
  }
  const size_t int_start = i;
  while (i < s.size() && is_digit(s[i]))
    ++i;
  std::string_view int_part = s.substr(int_start, i - int_start);
  std::string_view frac_part;
  if (i < s.size() && s[i] == '.') {
    const size_t frac_start = ++i;
    while (i < s.size() && is_digit(s[i]))
      ++i;
    frac_part = s.substr(frac_start, i - frac_start);
  }
  if (int_part.empty() && frac_part.empty()) return false;
  out += int_part.empty() ? "0" : std::string(int_part);
  out += "." + (frac_part.empty() ? std::string("0") : std::string(frac_part));
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    out += 'e';
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      if (s[i] == '-') out += '-';
      ++i;
    }
    std::string_view exponent = s.substr(i);
    if (!all_of(exponent, is_digit)) return false;
    out += exponent;
    i = s.size();
  }
  return i == s.size();
}

// For a canonical decimal that std::from_chars found out of range: whether it is below 1 (an
// underflow) rather than above (an overflow). Beyond double's range the first significant digit's
// decimal exponent is far from 0 either way, so its sign decides.
bool is_tiny(const std::string& canonical) {
  const size_t e = canonical.find('e');
  int64_t exponent = 0;
  if (e != std::string::npos) {
    const char* first = canonical.data() + e + 1;
    const char* last = canonical.data() + canonical.size();
    if (std::from_chars(first, last, exponent).ec != std::errc()) return *first == '-';
  }
  const std::string mantissa = canonical.substr(0, e);
  const size_t lead = mantissa.find_first_of("123456789");
  if (lead == std::string::npos) return true;  // zero
  const auto point = static_cast<int64_t>(mantissa.find('.'));
  const int64_t shift = static_cast<int64_t>(lead) < point ? point - static_cast<int64_t>(lead) - 1
                                                           : point - static_cast<int64_t>(lead);
  return exponent + shift < 0;
}

Parsed parse_core_float(std::string_view s, double& out) {
  std::string_view unsigned_part = s;
  const bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) unsigned_part.remove_prefix(1);
  if (unsigned_part == ".inf" || unsigned_part == ".Inf" || unsigned_part == ".INF") {
    out = negative ? -std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::infinity();
    return Parsed::Yes;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return Parsed::Yes;
  }
  std::string text;
  if (!canonical_decimal(s, text)) return Parsed::No;
  auto result = std::from_chars(text.data(), text.data() + text.size(), out);
  if (result.ec == std::errc()) return std::isinf(out) ? Parsed::OutOfRange : Parsed::Yes;
  // from_chars reports underflow as out of range too; like Python's float(), read it as zero.
  if (is_tiny(text)) {
    out = negative ? -0.0 : 0.0;
    return Parsed::Yes;
  }
  return Parsed::OutOfRange;
}

// "tag:yaml.org,2002:foo" as the user wrote it ("!!foo").
std::string shown_tag(const std::string& tag) {
  if (tag.compare(0, kCoreTagPrefix.size(), kCoreTagPrefix) == 0)
    return "!!" + tag.substr(kCoreTagPrefix.size());
  return tag;
}

// ---- events to Value ---------------------------------------------------------------------------

class ValueBuilder : public YAML::EventHandler {
 public:
  ValueBuilder(std::string_view text, std::shared_ptr<const std::string> file)
      : text_(text), file_(std::move(file)) {}

  Value take_root() {
    if (!have_root_) return Value().located(SourceLocation{file_, 0, 0});  // empty document
    return std::move(root_);
  }

  // yaml-cpp also starts a new document for content left after the top-level node ends (a map
  // line after a top-level list), so only a "---" is called a second document.
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ == 0) return;
    // Mark::pos counts from after a byte order mark.
    const size_t bom = text_.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
    const size_t pos = static_cast<size_t>(mark.pos) + bom;
    if (pos < text_.size() && text_.substr(pos, 3) == "---")
      fail("more than one document (a config file holds exactly one)", mark);
    fail("unexpected content after the end of the top-level node", mark);
  }
  void OnDocumentEnd() override {}

  void OnAnchor(const YAML::Mark& /*mark*/, const std::string& name) override {
    pending_anchor_name_ = name;
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (expecting_key()) key_error(Value(), mark);
    name_anchor(anchor);
    complete(Node{Value().located(location(mark)), 1, nullptr}, anchor, mark);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& text) override {
    name_anchor(anchor);
    // A key is its text; typing it could only reject keys such as a 20-digit number.
    const bool untyped_key = expecting_key() && (tag == "?" || tag == "!");
    Value value = untyped_key ? Value(text) : resolve_scalar(tag, text, mark);
    value.set_location(location(mark));
    complete(Node{std::move(value), 1, &text}, anchor, mark);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end())
      fail("alias *" + anchor_names_[anchor] + " refers to a node that contains it", mark);
    const Anchored& target = it->second;
    alias_values_ += target.nodes;
    if (alias_values_ > kMaxAliasValues)
      fail("aliases expand to more than " + std::to_string(kMaxAliasValues) + " values", mark);
    Value copy = target.value;
    copy.set_location(location(mark));  // the use site; values inside still point at the anchor
    const std::string* key_text = target.is_scalar ? &target.key_text : nullptr;
    complete(Node{std::move(copy), target.nodes, key_text}, YAML::NullAnchor, mark);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open_collection(Value::list(), "seq", tag, anchor, mark);
  }
  void OnSequenceEnd() override { close_collection(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open_collection(Value::map(), "map", tag, anchor, mark);
  }
  void OnMapEnd() override { close_collection(); }

 private:
  // A finished node on its way into its parent.
  struct Node {
    Value value;
    int64_t nodes;                // values in the tree, for the alias budget
    const std::string* key_text;  // a scalar's source text (its key when in key position)
  };

  // A list or map being filled.
  struct Frame {
    Value value;
    YAML::anchor_t anchor;
    YAML::Mark mark;
    int64_t nodes = 1;
    bool has_key = false;  // maps: a key was read, its value is next
    std::string key;
    std::unordered_map<std::string, int> key_lines;  // maps: line of each key, for duplicates
  };

  struct Anchored {
    Value value;
    int64_t nodes;
    bool is_scalar;
    std::string key_text;
  };

  SourceLocation location(const YAML::Mark& mark) const {
    return SourceLocation{file_, mark.line + 1, mark.column + 1};
  }

  [[noreturn]] void fail(const std::string& message, const YAML::Mark& mark) const {
    throw ConfigError(message, location(mark));
  }

  [[noreturn]] void key_error(const Value& key, const YAML::Mark& mark) const {
    const std::string got = key.is_null() ? "null" : std::string("a ") + key.kind_name();
    fail("a map key must be a string, got " + got, mark);
  }

  bool expecting_key() const {
    return !stack_.empty() && stack_.back().value.is_map() && !stack_.back().has_key;
  }

  Value resolve_scalar(const std::string& tag, const std::string& text, const YAML::Mark& mark) {
    if (tag == "?") return resolve_plain(text, mark);
    if (tag == "!" || tag == kCoreTagPrefix + "str") return Value(text);
    if (tag.compare(0, kCoreTagPrefix.size(), kCoreTagPrefix) == 0)
      return resolve_tagged(tag.substr(kCoreTagPrefix.size()), text, mark);
    fail("unsupported tag '" + shown_tag(tag) + "' (only the YAML core tags are allowed)", mark);
  }

  Value resolve_plain(const std::string& text, const YAML::Mark& mark) {
    if (is_null_text(text)) return Value();
    const int b = bool_text(text);
    if (b >= 0) return Value(b == 1);
    int64_t i = 0;
    switch (parse_core_int(text, i)) {
      case Parsed::Yes:
        return Value(i);
      case Parsed::OutOfRange:
        fail("integer out of range: " + text, mark);
      case Parsed::No:
        break;
    }
    double d = 0;
    switch (parse_core_float(text, d)) {
      case Parsed::Yes:
        return Value(d);
      case Parsed::OutOfRange:
        fail("number out of range (overflows a double): " + text, mark);
      case Parsed::No:
        break;
    }
    return Value(text);
  }

  // An explicit !!int, !!float, !!bool or !!null: the text must be one of that type's forms.
  Value resolve_tagged(const std::string& type, const std::string& text, const YAML::Mark& mark) {
    const std::string invalid = "'" + text + "' is not a valid !!" + type;
    if (type == "null") {
      if (!is_null_text(text)) fail(invalid, mark);
      return Value();
    }
    if (type == "bool") {
      const int b = bool_text(text);
      if (b < 0) fail(invalid, mark);
      return Value(b == 1);
    }
    if (type == "int" || type == "float") {
      Value number = resolve_plain(text, mark);
      if (!number.is_number() || (type == "int" && !number.is_int())) fail(invalid, mark);
      return type == "float" ? Value(number.as_double()) : number;
    }
    fail("unsupported tag '!!" + type + "' (only the YAML core tags are allowed)", mark);
  }

  void check_collection_tag(const std::string& tag, const char* core_type,
                            const YAML::Mark& mark) const {
    if (tag == "?" || tag == "!" || tag == kCoreTagPrefix + core_type) return;
    fail("unsupported tag '" + shown_tag(tag) + "' (only the YAML core tags are allowed)", mark);
  }

  void open_collection(Value value, const char* core_type, const std::string& tag,
                       YAML::anchor_t anchor, const YAML::Mark& mark) {
    if (expecting_key()) key_error(value, mark);
    check_collection_tag(tag, core_type, mark);
    if (static_cast<int>(stack_.size()) >= kMaxDepth)
      fail("nesting deeper than " + std::to_string(kMaxDepth), mark);
    name_anchor(anchor);
    Frame frame;
    frame.value = std::move(value.located(location(mark)));
    frame.anchor = anchor;
    frame.mark = mark;
    stack_.push_back(std::move(frame));
  }

  void close_collection() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    complete(Node{std::move(frame.value), frame.nodes, nullptr}, frame.anchor, frame.mark);
  }

  // The anchor's name arrives in OnAnchor just before its node's event; keep it for messages.
  void name_anchor(YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) anchor_names_[anchor] = pending_anchor_name_;
  }

  // Stores a finished node: as the anchor's target, then as the root, a list item, a map key or a
  // map value.
  void complete(Node node, YAML::anchor_t anchor, const YAML::Mark& mark) {
    if (anchor != YAML::NullAnchor) {
      const bool scalar = node.key_text != nullptr;
      anchors_[anchor] = Anchored{node.value, node.nodes, scalar, scalar ? *node.key_text : ""};
    }
    if (stack_.empty()) {
      root_ = std::move(node.value);
      have_root_ = true;
      return;
    }
    Frame& parent = stack_.back();
    parent.nodes += node.nodes;
    if (parent.value.is_list()) {
      parent.value.as_list().push_back(std::move(node.value));
    } else if (!parent.has_key) {
      add_key(parent, node, mark);
    } else {
      parent.value.as_map().emplace_back(std::move(parent.key), std::move(node.value));
      parent.has_key = false;
    }
  }

  void add_key(Frame& parent, const Node& node, const YAML::Mark& mark) {
    if (node.key_text == nullptr) key_error(node.value, mark);
    const std::string& key = *node.key_text;
    auto [it, inserted] = parent.key_lines.emplace(key, mark.line + 1);
    if (!inserted) {
      fail("duplicate key '" + key + "' (first at line " + std::to_string(it->second) + ")", mark);
    }
    parent.key = key;
    parent.has_key = true;
  }

  std::string_view text_;
  std::shared_ptr<const std::string> file_;
  std::vector<Frame> stack_;
  Value root_;
  bool have_root_ = false;
  int documents_ = 0;
  std::string pending_anchor_name_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  std::unordered_map<YAML::anchor_t, std::string> anchor_names_;
  int64_t alias_values_ = 0;
};

}  // namespace

Value parse_yaml(std::string_view text, const std::string& source_name) {
  auto file = std::make_shared<const std::string>(source_name);
  std::istringstream in{std::string(text)};
  ValueBuilder builder(text, file);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const YAML::Exception& e) {
    // yaml-cpp's marks are 0-based; a null mark (-1) becomes "unknown" (0).
    const SourceLocation where{file, e.mark.line + 1, e.mark.column + 1};
    throw ConfigError(e.msg, where);
  }
  return builder.take_root();
}

}  // namespace qplug
