// plan_targets: one decision per module that holds tensors, by the precedence documented in
// targeting.hpp, each with the rule that made it so `qplug inspect` can explain it.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

// transformers' generic name for the skip list, used when the quantizer does not say which key.
constexpr const char* kDefaultSkipKey = "modules_to_not_convert";

struct Verdict {
  Decision decision;
  std::string rule;
};

// Everything the decision steps need, parsed once so a bad rule fails before any module is looked
// at, even a rule that would match nothing.
struct PlanContext {
  PlanContext(const ModelDescription& m, const TargetingRequest& r, const QuantizerConstraints& c)
      : model(m), request(r), constraints(c) {}

  const ModelDescription& model;
  const TargetingRequest& request;
  const QuantizerConstraints& constraints;
  std::string skip_key;
  std::vector<SkipRule> keep_in_fp32;
  std::vector<SkipRule> user_skips;
  std::vector<DefaultSkip> defaults;    // empty when the defaults do not apply
  std::vector<SkipRule> default_rules;  // defaults[i] as a rule, same index
  std::string container;                // set when only_in_blocks
};

std::vector<SkipRule> parse_rules(const std::vector<std::string>& texts, const std::string& key) {
  std::vector<SkipRule> rules;
  rules.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i)
    rules.emplace_back(texts[i], key + "[" + std::to_string(i) + "]");
  return rules;
}

PlanContext make_context(const ModelDescription& model, const TargetingRequest& request,
                         const QuantizerConstraints& constraints) {
  PlanContext ctx(model, request, constraints);
  ctx.skip_key = request.skip_key.empty() ? kDefaultSkipKey : request.skip_key;
  ctx.keep_in_fp32 = parse_rules(model.keep_in_fp32_modules, "_keep_in_fp32_modules");
  if (request.skip_modules) ctx.user_skips = parse_rules(*request.skip_modules, ctx.skip_key);
  if (!request.skip_modules || request.add_default_skips) {
    ctx.defaults = default_skips(model);
    for (const auto& skip : ctx.defaults)
      ctx.default_rules.emplace_back(skip.module, "default skips");
  }
  if (request.only_in_blocks) ctx.container = find_block_container(model, request.block_container);
  return ctx;
}

// The best rule for `m`. Name rules walk ancestors themselves; a type rule only sees the type it
// is given, so the ancestors' types are tried here ("type:LlamaMLP" covers the MLP's linears).
RuleMatch covering_rule(const std::vector<SkipRule>& rules, const ModelDescription& model,
                        const ModuleInfo& m) {
  const RuleMatch own = match_rules(rules, m.name, m.type);
  if (own) return own;
  for (auto dot = m.name.rfind('.'); dot != std::string::npos && dot > 0;
       dot = m.name.rfind('.', dot - 1)) {
    const ModuleInfo* ancestor = model.find(m.name.substr(0, dot));
    if (ancestor == nullptr) continue;
    const RuleMatch inherited = match_rules(rules, ancestor->name, ancestor->type);
    if (inherited) return inherited;
  }
  return {};
}

std::optional<Verdict> keep_in_fp32_step(const PlanContext& ctx, const ModuleInfo& m) {
  const RuleMatch hit = covering_rule(ctx.keep_in_fp32, ctx.model, m);
  if (!hit) return std::nullopt;
  return Verdict{Decision::Keep,
                 "keep_in_fp32 module '" + hit.rule->text() + "' (" + to_string(hit.kind) + ")"};
}

std::optional<Verdict> user_skip_step(const PlanContext& ctx, const ModuleInfo& m) {
  const RuleMatch hit = covering_rule(ctx.user_skips, ctx.model, m);
  if (!hit) return std::nullopt;
  return Verdict{Decision::Keep, "user skip '" + hit.rule->text() + "' from " + ctx.skip_key +
                                     " (" + to_string(hit.kind) + ")"};
}

std::optional<Verdict> default_skip_step(const PlanContext& ctx, const ModuleInfo& m) {
  const RuleMatch hit = covering_rule(ctx.default_rules, ctx.model, m);
  if (!hit) return std::nullopt;
  const auto index = static_cast<std::size_t>(hit.rule - ctx.default_rules.data());
  return Verdict{Decision::Keep, "default skip: " + ctx.defaults[index].reason};
}

std::optional<Verdict> block_step(const PlanContext& ctx, const ModuleInfo& m) {
  const std::string& prefix = ctx.container;
  if (!prefix.empty() && m.name.compare(0, prefix.size() + 1, prefix + ".") != 0)
    return Verdict{Decision::Keep, "outside the block container '" + prefix + "'"};
  const auto& listed = ctx.request.modules_in_block;
  if (listed && filter_modules_in_block({m.name}, *listed).empty())
    return Verdict{Decision::Keep, "not in modules_in_block_to_quantize"};
  return std::nullopt;
}

std::optional<Verdict> constraint_step(const PlanContext& ctx, const ModuleInfo& m) {
  if (!ctx.constraints.unsupported_reason) return std::nullopt;
  const auto reason = ctx.constraints.unsupported_reason(m);
  if (!reason) return std::nullopt;
  const std::string fix =
      ctx.request.skip_hint.empty()
          ? "add '" + m.name + "' to " + ctx.skip_key + " to keep it in full precision"
          : ctx.request.skip_hint;
  return Verdict{Decision::Unsupported, "unsupported: " + *reason + " (" + fix + ")"};
}

Verdict decide(const PlanContext& ctx, const ModuleInfo& m) {
  if (!m.is_linear) return {Decision::Keep, "not a linear layer"};
  using Step = std::optional<Verdict> (*)(const PlanContext&, const ModuleInfo&);
  for (Step step :
       {keep_in_fp32_step, user_skip_step, default_skip_step, block_step, constraint_step}) {
    if (auto verdict = step(ctx, m)) return std::move(*verdict);
  }
  return {Decision::Quantize, "quantize"};
}

// The bytes a module adds to a checkpoint: a tied parameter shares its source's storage and is
// not written again, so it costs nothing.
int64_t stored_bytes(const ModelDescription& model, const ModuleInfo& m) {
  int64_t total = 0;
  for (const auto& p : m.params) {
    const std::string full = m.name + "." + p.name;
    bool tied = false;
    for (const auto& t : model.tied_weights)
      tied |= t.target == full;
    if (!tied) total += p.bytes();
  }
  return total;
}

TargetEntry make_entry(const PlanContext& ctx, const ModuleInfo& m) {
  TargetEntry entry;
  entry.module = m.name;
  entry.type = m.type;
  entry.is_linear = m.is_linear;
  if (m.is_linear) {
    entry.in_features = m.in_features;
    entry.out_features = m.out_features;
  }
  Verdict verdict = decide(ctx, m);
  entry.decision = verdict.decision;
  entry.rule = std::move(verdict.rule);
  entry.bytes_before = stored_bytes(ctx.model, m);
  // A quantizer that cannot estimate its output size leaves the size unchanged rather than guess.
  const bool sized = entry.decision == Decision::Quantize && ctx.constraints.quantized_bytes;
  entry.bytes_after = sized ? ctx.constraints.quantized_bytes(m) : entry.bytes_before;
  return entry;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Serving engines fuse these linears into one matrix, so a group half quantized cannot be served.
void check_fused_group(const PlanContext& ctx, const TargetPlan& plan, const FusedGroup& group) {
  std::vector<const TargetEntry*> present;
  for (const auto& member : group.members)
    if (const TargetEntry* entry = plan.find(member)) present.push_back(entry);
  bool split = false;
  for (const TargetEntry* entry : present)
    split |= entry->decision != present.front()->decision;
  if (!split) return;
  std::vector<std::string> names, decided;
  for (const TargetEntry* entry : present) {
    names.push_back(entry->module);
    decided.push_back(entry->module + " -> " + to_string(entry->decision) + " (" + entry->rule +
                      ")");
  }
  throw ConfigError("fused group '" + group.name + "' would be split: " + join(decided) +
                        "; these layers are fused into one matrix, so decide them together: skip "
                        "all of " +
                        join(names) + " or none",
                    {}, ctx.request.skip_key);
}

}  // namespace

// A user rule that matches no module at all is almost always a typo or a rule written for another
// architecture: worth a warning, not an error (transformers ignores such entries silently).
std::vector<std::string> unused_rule_warnings(const PlanContext& ctx) {
  std::vector<std::string> warnings;
  for (const SkipRule& rule : ctx.user_skips) {
    bool used = false;
    for (const auto& m : ctx.model.modules)
      if (rule.match(m.name, m.type) != MatchKind::None) {
        used = true;
        break;
      }
    if (!used)
      warnings.push_back("skip rule '" + rule.text() + "' from " + rule.source() +
                         " matches no module of this " + ctx.model.model_type +
                         " model; check its spelling (`qplug inspect` lists the module names)");
  }
  return warnings;
}

TargetPlan plan_targets(const ModelDescription& model, const std::string& quant_method,
                        const TargetingRequest& request, const QuantizerConstraints& constraints) {
  const PlanContext ctx = make_context(model, request, constraints);
  TargetPlan plan;
  plan.quant_method = quant_method;
  plan.block_container = ctx.container;
  plan.modules_to_not_convert = get_modules_to_not_convert(
      model, request.skip_modules, model.keep_in_fp32_modules, request.add_default_skips);
  for (const auto& m : model.modules)
    if (!m.params.empty()) plan.entries.push_back(make_entry(ctx, m));
  for (const auto& group : model.fused_groups)
    check_fused_group(ctx, plan, group);
  plan.warnings = unused_rule_warnings(ctx);
  return plan;
}

}  // namespace qplug
