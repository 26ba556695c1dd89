// Module targeting: which layers a quantizer converts and which stay in full precision, and why.
// Owned by core; plugins only declare a TargetingRequest and their shape constraints.
//
// Rule language (one string per rule, in any skip list). Every rule that matches a module also
// covers everything below it (a rule for "model.layers.0" covers "model.layers.0.mlp.up_proj").
//   lm_head                    plain name: exact name, prefix at a dot boundary, transformers' leaf
//                              name rule (the last component equals it: "down_proj"), or
//                              transformers' substring rule ("<rule>." occurs inside the name)
//   *.norm, model.*.q_proj     glob: * any run of characters (dots included), ? one character
//   re:model\.layers\.\d+\.mlp anchored regular expression (ECMAScript), full match
//   type:Embedding             module type, as ModuleInfo::type spells it
//   model.layers.[0-3].mlp     layer range: [a-b], [a,b,c] or mixed, numeric, inside a name/glob
// When several rules match, the one reported is the first by this precedence: exact name, prefix,
// leaf name, substring, layer range, glob, regex, type; within a kind, the earlier rule in the
// list. Details and examples: docs/targeting.md.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "qplug/sdk/model_description.hpp"
#include "qplug/sdk/targeting.hpp"

namespace qplug {

// How a rule matched a module name.
enum class MatchKind { None, Exact, Prefix, LeafName, Substring, LayerRange, Glob, Regex, Type };
const char* to_string(MatchKind kind);

class SkipRule {
 public:
  // Parses a rule; throws ConfigError (naming `source`, e.g. "llm_int8_skip_modules[2]") for an
  // empty rule, an invalid regex or a malformed range.
  explicit SkipRule(std::string text, std::string source = {});
  const std::string& text() const { return text_; }
  const std::string& source() const { return source_; }
  // How this rule matches `module` (of type `type`), including by covering an ancestor.
  MatchKind match(const std::string& module, const std::string& type) const;
  // Matches a single name exactly as the rule's own form does (no ancestor walk).
  bool matches_name(const std::string& name) const;

 private:
  enum class Form { Plain, Pattern, Regex, Type };
  std::string text_;
  std::string source_;
  Form form_ = Form::Plain;
  bool has_range_ = false;
  std::shared_ptr<std::regex> regex_;
};

// The result of matching a module against a list of rules.
struct RuleMatch {
  MatchKind kind = MatchKind::None;
  const SkipRule* rule = nullptr;
  explicit operator bool() const { return kind != MatchKind::None; }
};
// The best match by the documented precedence, or kind None.
RuleMatch match_rules(const std::vector<SkipRule>& rules, const std::string& module,
                      const std::string& type);

// transformers' get_keys_to_not_convert: module names of tied weights (declared and detected),
// of the last parameter, and of the output embedding; deduplicated in that stable order. (We strip
// the parameter name so every entry is a module name.)
std::vector<std::string> get_keys_to_not_convert(const ModelDescription& model);

// get_keys_to_not_convert with the reason each entry is there: "tied weight", "last parameter" or
// "output embedding" (the first that applies, in that order), so a plan can say which default
// kept a module.
struct DefaultSkip {
  std::string module;
  std::string reason;
};
std::vector<DefaultSkip> default_skips(const ModelDescription& model);

// transformers' get_modules_to_not_convert: defaults when skip_modules is nullopt or
// add_default_skips, then skip_modules, then keep_in_fp32; deduplicated in a stable order.
std::vector<std::string> get_modules_to_not_convert(
    const ModelDescription& model, const std::optional<std::vector<std::string>>& skip_modules,
    const std::vector<std::string>& keep_in_fp32, bool add_default_skips);

// What a quantizer contributes to planning, beyond its TargetingRequest.
struct QuantizerConstraints {
  // nullopt when the layer can be converted, else why not.
  std::function<std::optional<std::string>(const ModuleInfo&)> unsupported_reason;
  std::function<int64_t(const ModuleInfo&)> quantized_bytes;
};

// Decides every module. Precedence (first that applies wins):
//   1. not a linear layer                       -> Keep "not a linear layer"
//   2. the architecture's keep_in_fp32 modules  -> Keep
//   3. a user skip rule                         -> Keep "user skip '<rule>' from <key> (<kind>)"
//   4. a default skip (when they apply)         -> Keep "default skip: <why>"
//   5. outside the block container / not in modules_in_block (when requested) -> Keep
//   6. the quantizer's shape constraint         -> Unsupported "unsupported: <reason> (add ...)"
//   7. otherwise                                -> Quantize
// Then every fused group must have one decision; a split is a ConfigError naming the group, each
// member's decision and rule, and how to fix it.
TargetPlan plan_targets(const ModelDescription& model, const std::string& quant_method,
                        const TargetingRequest& request, const QuantizerConstraints& constraints);

// ---- GPTQ-style block discovery (optimum) --------------------------------------------------

// ["transformer.h", "model.decoder.layers", "gpt_neox.layers", "model.layers",
//  "model.language_model.layers", "h", "decoder.layers", "layers"]
const std::vector<std::string>& block_patterns();
// block_name_to_quantize if given, else the first pattern that prefixes (at a dot boundary) some
// module name. Throws ConfigError when none matches or the given name is not in the model.
std::string find_block_container(const ModelDescription& model,
                                 const std::optional<std::string>& block_name_to_quantize);
// The blocks: the direct children of the container ("model.layers.0", ...), in order.
std::vector<std::string> get_blocks(const ModelDescription& model, const std::string& container);
// optimum's get_layers: every linear layer under `prefix`, in definition order.
std::vector<std::string> get_layers(const ModelDescription& model, const std::string& prefix);
// Keeps the layers whose name ends with one of `modules_in_block` (plain endswith, as optimum).
std::vector<std::string> filter_modules_in_block(const std::vector<std::string>& layers,
                                                 const std::vector<std::string>& modules_in_block);

}  // namespace qplug
