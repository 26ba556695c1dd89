// The skip-rule language of targeting.hpp: parsing (with errors that name the config entry),
// matching one module name, and choosing the reported match among several rules.
#include <cctype>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

const char* to_string(MatchKind kind) {
  switch (kind) {
    case MatchKind::None:
      return "no match";
    case MatchKind::Exact:
      return "exact name";
    case MatchKind::Prefix:
      return "prefix";
    case MatchKind::LeafName:
      return "leaf name";
    case MatchKind::Substring:
      return "substring";
    case MatchKind::LayerRange:
      return "layer range";
    case MatchKind::Glob:
      return "glob";
    case MatchKind::Regex:
      return "regex";
    case MatchKind::Type:
      return "type";
  }
  return "?";
}

namespace {

constexpr std::string_view kRegexPrefix = "re:";
constexpr std::string_view kTypePrefix = "type:";
// Layer indices never come close; the cap keeps the numeric parse free of overflow.
constexpr std::size_t kMaxDigits = 18;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool is_digit(char c) {
  return std::isdigit(static_cast<unsigned char>(c)) != 0;
}

[[noreturn]] void reject(const std::string& rule, const std::string& source,
                         const std::string& why) {
  throw ConfigError("invalid skip rule '" + rule + "': " + why, {}, source);
}

// ---- numeric ranges: "[0-3]", "[0,2,5-7]" -------------------------------------------------

struct Interval {
  uint64_t lo = 0;
  uint64_t hi = 0;
};

std::optional<uint64_t> parse_number(std::string_view digits) {
  if (digits.empty() || digits.size() > kMaxDigits) return std::nullopt;
  uint64_t value = 0;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

std::optional<Interval> parse_interval(std::string_view item) {
  const auto dash = item.find('-');
  if (dash == std::string_view::npos) {
    const auto n = parse_number(item);
    if (!n) return std::nullopt;
    return Interval{*n, *n};
  }
  const auto lo = parse_number(item.substr(0, dash));
  const auto hi = parse_number(item.substr(dash + 1));
  if (!lo || !hi || *lo > *hi) return std::nullopt;
  return Interval{*lo, *hi};
}

// The text between the brackets; nullopt when it is not a comma-separated list of numbers and
// ascending a-b ranges.
std::optional<std::vector<Interval>> parse_range_set(std::string_view spec) {
  std::vector<Interval> set;
  std::size_t start = 0;
  while (true) {
    const auto comma = spec.find(',', start);
    const auto item =
        spec.substr(start, comma == std::string_view::npos ? spec.npos : comma - start);
    const auto interval = parse_interval(item);
    if (!interval) return std::nullopt;
    set.push_back(*interval);
    if (comma == std::string_view::npos) return set;
    start = comma + 1;
  }
}

bool in_set(const std::vector<Interval>& set, std::string_view digits) {
  const auto n = parse_number(digits);
  if (!n) return false;
  for (const auto& interval : set)
    if (*n >= interval.lo && *n <= interval.hi) return true;
  return false;
}

// Checks every bracket of a glob/range pattern, so matching can trust the brackets.
void validate_pattern(const std::string& rule, const std::string& source) {
  for (std::size_t i = 0; i < rule.size(); ++i) {
    if (rule[i] == ']') reject(rule, source, "']' without a matching '['");
    if (rule[i] != '[') continue;
    const auto close = rule.find(']', i);
    if (close == std::string::npos) reject(rule, source, "'[' without a closing ']'");
    const std::string_view spec(rule.data() + i + 1, close - i - 1);
    if (!parse_range_set(spec))
      reject(rule, source,
             "malformed layer range '[" + std::string(spec) +
                 "]'; write numbers and ascending ranges such as [0-3] or [0,2,5-7]");
    i = close;
  }
}

// Glob matching with numeric ranges, memoised on (pattern position, name position) so a pattern
// with several stars stays linear in practice.
class GlobMatcher {
 public:
  GlobMatcher(std::string_view pattern, std::string_view name)
      : pattern_(pattern), name_(name), memo_((pattern.size() + 1) * (name.size() + 1), kUnknown) {}

  bool run() { return match(0, 0); }

 private:
  static constexpr char kUnknown = 0, kNo = 1, kYes = 2;

  bool match(std::size_t p, std::size_t n) {
    if (p == pattern_.size()) return n == name_.size();
    char& memo = memo_[p * (name_.size() + 1) + n];
    if (memo == kUnknown) memo = step(p, n) ? kYes : kNo;
    return memo == kYes;
  }

  bool step(std::size_t p, std::size_t n) {
    const bool more = n < name_.size();
    switch (pattern_[p]) {
      case '*':
        return match(p + 1, n) || (more && match(p, n + 1));
      case '?':
        return more && match(p + 1, n + 1);
      case '[':
        return range(p, n);
      default:
        return more && name_[n] == pattern_[p] && match(p + 1, n + 1);
    }
  }

  // A range consumes one whole decimal number: a maximal run of digits that does not continue
  // one already begun, so "[1]" never matches the "1" of "11" or of "21".
  bool range(std::size_t p, std::size_t n) {
    if (n >= name_.size() || !is_digit(name_[n])) return false;
    if (n > 0 && is_digit(name_[n - 1])) return false;
    std::size_t end = n;
    while (end < name_.size() && is_digit(name_[end]))
      ++end;
    const auto close = pattern_.find(']', p);
    const auto set = parse_range_set(pattern_.substr(p + 1, close - p - 1));
    return set && in_set(*set, name_.substr(n, end - n)) && match(close + 1, end);
  }

  std::string_view pattern_;
  std::string_view name_;
  std::vector<char> memo_;
};

// transformers' plain-name semantics, strongest first. A name that has the rule as an ancestor
// reports Prefix; the leaf-name and substring rules cover descendants by construction.
MatchKind plain_kind(const std::string& rule, const std::string& name) {
  if (name == rule) return MatchKind::Exact;
  const std::string with_dot = rule + ".";
  if (starts_with(name, with_dot)) return MatchKind::Prefix;
  const auto dot = name.rfind('.');
  if (dot != std::string::npos && name.compare(dot + 1, std::string::npos, rule) == 0)
    return MatchKind::LeafName;
  // transformers' quirk: the rule need not start at a dot ("ers.1" matches "model.layers.1.mlp").
  if (name.find(with_dot) != std::string::npos) return MatchKind::Substring;
  return MatchKind::None;
}

}  // namespace

SkipRule::SkipRule(std::string text, std::string source)
    : text_(std::move(text)), source_(std::move(source)) {
  if (text_.empty()) reject(text_, source_, "the rule is empty");
  if (starts_with(text_, kRegexPrefix)) {
    form_ = Form::Regex;
    const std::string pattern = text_.substr(kRegexPrefix.size());
    if (pattern.empty()) reject(text_, source_, "the regular expression is empty");
    try {
      regex_ = std::make_shared<std::regex>(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      reject(text_, source_,
             std::string("not a valid ECMAScript regular expression (") + e.what() + ")");
    }
  } else if (starts_with(text_, kTypePrefix)) {
    form_ = Form::Type;
    if (text_.size() == kTypePrefix.size()) reject(text_, source_, "the module type is empty");
  } else if (text_.find_first_of("*?[]") != std::string::npos) {
    form_ = Form::Pattern;
    has_range_ = text_.find('[') != std::string::npos;
    validate_pattern(text_, source_);
  }
}

bool SkipRule::matches_name(const std::string& name) const {
  switch (form_) {
    case Form::Plain:
      return plain_kind(text_, name) != MatchKind::None;
    case Form::Pattern:
      return GlobMatcher(text_, name).run();
    case Form::Regex:
      return std::regex_match(name, *regex_);
    case Form::Type:
      return false;  // a type rule says nothing about names
  }
  return false;
}

MatchKind SkipRule::match(const std::string& module, const std::string& type) const {
  switch (form_) {
    case Form::Plain:
      return plain_kind(text_, module);
    case Form::Type:
      return type == std::string_view(text_).substr(kTypePrefix.size()) ? MatchKind::Type
                                                                        : MatchKind::None;
    case Form::Pattern:
    case Form::Regex:
      break;
  }
  const MatchKind kind = form_ == Form::Regex ? MatchKind::Regex
                         : has_range_         ? MatchKind::LayerRange
                                              : MatchKind::Glob;
  // The module itself, then each ancestor: a pattern for a container covers what is inside it.
  std::string candidate = module;
  while (true) {
    if (matches_name(candidate)) return kind;
    const auto dot = candidate.rfind('.');
    if (dot == std::string::npos) return MatchKind::None;
    candidate.resize(dot);
  }
}

RuleMatch match_rules(const std::vector<SkipRule>& rules, const std::string& module,
                      const std::string& type) {
  RuleMatch best;
  for (const auto& rule : rules) {
    const MatchKind kind = rule.match(module, type);
    if (kind == MatchKind::None) continue;
    // The enumerators are declared in precedence order; strict < keeps the earlier rule on ties.
    if (!best || kind < best.kind) best = RuleMatch{kind, &rule};
    if (best.kind == MatchKind::Exact) break;
  }
  return best;
}

}  // namespace qplug
