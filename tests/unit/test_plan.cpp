// plan_targets: per-module decisions, the rule strings that explain them, the precedence
// between steps, fused groups, block restriction and byte totals.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model_descriptions.hpp"
#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

using Names = std::vector<std::string>;
using testing::gpt2;
using testing::opt;
using testing::tied_llama;
using testing::untied_llama;

constexpr const char* kBnbKey = "llm_int8_skip_modules";

// A 4-bit method that reports half a byte per weight and supports every shape.
QuantizerConstraints four_bit() {
  QuantizerConstraints c;
  c.quantized_bytes = [](const ModuleInfo& m) { return m.in_features * m.out_features / 2; };
  return c;
}

// Like four_bit, but both dimensions must be multiples of `n` (a group-size restriction).
QuantizerConstraints multiples_of(int64_t n) {
  QuantizerConstraints c = four_bit();
  c.unsupported_reason = [n](const ModuleInfo& m) -> std::optional<std::string> {
    if (m.in_features % n == 0 && m.out_features % n == 0) return std::nullopt;
    return "in_features " + std::to_string(m.in_features) + " and out_features " +
           std::to_string(m.out_features) + " must be multiples of " + std::to_string(n);
  };
  return c;
}

TargetingRequest skipping(Names rules) {
  TargetingRequest r;
  r.skip_modules = std::move(rules);
  r.skip_key = kBnbKey;
  return r;
}

TargetingRequest defaults_only() {
  TargetingRequest r;
  r.skip_key = kBnbKey;
  return r;
}

const TargetEntry& entry(const TargetPlan& plan, const std::string& module) {
  const TargetEntry* e = plan.find(module);
  if (e == nullptr) throw std::runtime_error("no entry for " + module);
  return *e;
}

std::string rule_of(const TargetPlan& plan, const std::string& module) {
  return entry(plan, module).rule;
}

// The ConfigError planning raises; fails the test when planning succeeds.
ConfigError plan_error(const ModelDescription& model, const TargetingRequest& request,
                       const QuantizerConstraints& constraints = four_bit()) {
  try {
    plan_targets(model, "bnb_4bit", request, constraints);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "planning succeeded";
  return ConfigError("none");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- the default plan on stories260K-sized Llama ---------------------------------------------

TEST(PlanTest, OneEntryPerModuleWithTensorsInDefinitionOrder) {
  const TargetPlan plan = plan_targets(tied_llama(), "bnb_4bit", defaults_only(), four_bit());
  // Embedding + 5 x (7 linears + 2 norms) + final norm + head.
  ASSERT_EQ(plan.entries.size(), 48u);
  const Names first = {"model.embed_tokens",
                       "model.layers.0.self_attn.q_proj",
                       "model.layers.0.self_attn.k_proj",
                       "model.layers.0.self_attn.v_proj",
                       "model.layers.0.self_attn.o_proj",
                       "model.layers.0.mlp.gate_proj",
                       "model.layers.0.mlp.up_proj",
                       "model.layers.0.mlp.down_proj",
                       "model.layers.0.input_layernorm",
                       "model.layers.0.post_attention_layernorm",
                       "model.layers.1.self_attn.q_proj"};
  for (std::size_t i = 0; i < first.size(); ++i)
    EXPECT_EQ(plan.entries[i].module, first[i]);
  EXPECT_EQ(plan.entries[46].module, "model.norm");
  EXPECT_EQ(plan.entries[47].module, "lm_head");
  // Modules without tensors of their own get no entry.
  for (const char* empty : {"model", "model.layers", "model.layers.0", "model.layers.0.mlp",
                            "model.layers.0.mlp.act_fn", "model.rotary_emb"})
    EXPECT_EQ(plan.find(empty), nullptr) << empty;
}

TEST(PlanTest, DefaultPlanOnTiedLlama) {
  const TargetPlan plan = plan_targets(tied_llama(), "bnb_4bit", defaults_only(), four_bit());
  EXPECT_EQ(plan.quant_method, "bnb_4bit");
  EXPECT_EQ(plan.block_container, "");
  EXPECT_EQ(plan.modules_to_not_convert, (Names{"lm_head", "model.embed_tokens", "model.norm"}));
  EXPECT_EQ(plan.quantized_modules().size(), 35u);
  EXPECT_EQ(plan.kept_linears(), Names{"lm_head"});
  EXPECT_TRUE(plan.unsupported().empty());

  const TargetEntry& head = entry(plan, "lm_head");
  EXPECT_EQ(head.decision, Decision::Keep);
  EXPECT_EQ(head.rule, "default skip: tied weight");
  EXPECT_TRUE(head.is_linear);
  EXPECT_EQ(head.bytes_after, head.bytes_before);

  const TargetEntry& embed = entry(plan, "model.embed_tokens");
  EXPECT_EQ(embed.decision, Decision::Keep);
  EXPECT_EQ(embed.rule, "not a linear layer");
  EXPECT_EQ(embed.type, "Embedding");
  EXPECT_FALSE(embed.is_linear);
  EXPECT_EQ(embed.in_features, 0);
  EXPECT_EQ(embed.bytes_before, 512 * 64 * 4);
  EXPECT_EQ(embed.bytes_after, 512 * 64 * 4);
  // A default skip that is not a linear is reported as such: step 1 comes first.
  EXPECT_EQ(rule_of(plan, "model.norm"), "not a linear layer");
  EXPECT_EQ(entry(plan, "model.norm").type, "LlamaRMSNorm");
}

TEST(PlanTest, LinearEntriesCarryShapesAndSizes) {
  const TargetPlan plan = plan_targets(tied_llama(), "bnb_4bit", defaults_only(), four_bit());
  const TargetEntry& q = entry(plan, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(q.decision, Decision::Quantize);
  EXPECT_EQ(q.rule, "quantize");
  EXPECT_EQ(q.type, "Linear");
  EXPECT_TRUE(q.is_linear);
  EXPECT_EQ(q.in_features, 64);
  EXPECT_EQ(q.out_features, 64);
  EXPECT_EQ(q.bytes_before, 64 * 64 * 4);
  EXPECT_EQ(q.bytes_after, 64 * 64 / 2);
  const TargetEntry& k = entry(plan, "model.layers.3.self_attn.k_proj");
  EXPECT_EQ(k.out_features, 32);  // 4 kv heads of dim 8
  const TargetEntry& down = entry(plan, "model.layers.4.mlp.down_proj");
  EXPECT_EQ(down.in_features, 172);
  EXPECT_EQ(down.out_features, 64);
  EXPECT_EQ(down.bytes_after, 172 * 64 / 2);
}

TEST(PlanTest, ByteTotals) {
  const ModelDescription model = tied_llama();
  const TargetPlan plan = plan_targets(model, "bnb_4bit", defaults_only(), four_bit());
  // 292800 fp32 values in the modules, but the tied head (512 x 64) is not stored again, which
  // leaves what stories260K's file holds; 226560 are quantized layer weights that shrink to half a
  // byte each.
  const int64_t tied_head = 512 * 64 * 4;
  EXPECT_EQ(model.total_bytes(), 1171200);
  EXPECT_EQ(plan.bytes_before(), 1171200 - tied_head);
  EXPECT_EQ(plan.bytes_after(), 1171200 - tied_head - 226560 * 4 + 226560 / 2);
}

TEST(PlanTest, NoSizeEstimateLeavesSizesUnchanged) {
  const TargetPlan plan = plan_targets(untied_llama(1), "x", defaults_only(), {});
  EXPECT_EQ(plan.quantized_modules().size(), 7u);
  EXPECT_EQ(plan.bytes_after(), plan.bytes_before());
}

// ---- user skips: the rule string names the rule, its key and how it matched ---------------

TEST(PlanTest, UserListReplacesTheDefaults) {
  const TargetPlan plan = plan_targets(tied_llama(), "bnb_4bit", skipping({"mlp"}), four_bit());
  EXPECT_EQ(rule_of(plan, "model.layers.2.mlp.gate_proj"),
            "user skip 'mlp' from llm_int8_skip_modules (substring)");
  EXPECT_EQ(entry(plan, "model.layers.2.mlp.gate_proj").decision, Decision::Keep);
  // As in transformers, a user list without lm_head quantizes it.
  EXPECT_EQ(entry(plan, "lm_head").decision, Decision::Quantize);
  EXPECT_EQ(plan.modules_to_not_convert, Names{"mlp"});
  EXPECT_EQ(plan.quantized_modules().size(), 5u * 4 + 1);
}

struct RuleCase {
  std::string rule;
  std::string module;
  std::string reported;
};

TEST(PlanTest, EveryRuleFormIsReportedWithItsKind) {
  const std::vector<RuleCase> cases = {
      {"lm_head", "lm_head", "exact name"},
      {"model.layers.2", "model.layers.2.mlp.up_proj", "prefix"},
      {"o_proj", "model.layers.0.self_attn.o_proj", "leaf name"},
      {"layers.3", "model.layers.3.self_attn.q_proj", "substring"},
      {"model.layers.[1-2].mlp", "model.layers.1.mlp.down_proj", "layer range"},
      {"*.o_proj", "model.layers.4.self_attn.o_proj", "glob"},
      {R"(re:model\.layers\.\d+\.mlp\.(gate|up)_proj)", "model.layers.0.mlp.up_proj", "regex"},
      {"type:LlamaMLP", "model.layers.3.mlp.down_proj", "type"},  // through its parent's type
      {"type:Linear", "lm_head", "type"},
  };
  for (const auto& c : cases) {
    const TargetPlan plan =
        plan_targets(untied_llama(), "bnb_4bit", skipping({c.rule}), four_bit());
    EXPECT_EQ(rule_of(plan, c.module),
              "user skip '" + c.rule + "' from llm_int8_skip_modules (" + c.reported + ")");
    EXPECT_EQ(entry(plan, c.module).decision, Decision::Keep) << c.rule;
  }
}

TEST(PlanTest, RulesOnlyTouchWhatTheyMatch) {
  const TargetPlan plan =
      plan_targets(untied_llama(), "bnb_4bit", skipping({"model.layers.[1-2].mlp"}), four_bit());
  EXPECT_TRUE(plan.quantizes("model.layers.0.mlp.down_proj"));
  EXPECT_TRUE(plan.quantizes("model.layers.3.mlp.down_proj"));
  EXPECT_TRUE(plan.quantizes("model.layers.1.self_attn.q_proj"));
  EXPECT_FALSE(plan.quantizes("model.layers.2.mlp.gate_proj"));
  EXPECT_EQ(plan.kept_linears().size(), 6u);
}

TEST(PlanTest, TheStrongestRuleIsReported) {
  const TargetPlan plan =
      plan_targets(untied_llama(), "bnb_4bit",
                   skipping({"type:Linear", "*.down_proj", "down_proj"}), four_bit());
  EXPECT_EQ(rule_of(plan, "model.layers.1.mlp.down_proj"),
            "user skip 'down_proj' from llm_int8_skip_modules (leaf name)");
  EXPECT_EQ(rule_of(plan, "model.layers.1.mlp.up_proj"),
            "user skip 'type:Linear' from llm_int8_skip_modules (type)");
}

TEST(PlanTest, AddDefaultSkipsAppliesBoth) {
  TargetingRequest request = skipping({"o_proj"});
  request.add_default_skips = true;
  const TargetPlan plan = plan_targets(tied_llama(), "bnb_4bit", request, four_bit());
  EXPECT_EQ(rule_of(plan, "lm_head"), "default skip: tied weight");
  EXPECT_EQ(rule_of(plan, "model.layers.0.self_attn.o_proj"),
            "user skip 'o_proj' from llm_int8_skip_modules (leaf name)");
  EXPECT_EQ(plan.modules_to_not_convert,
            (Names{"lm_head", "model.embed_tokens", "model.norm", "o_proj"}));
}

TEST(PlanTest, DefaultSkipReasons) {
  EXPECT_EQ(rule_of(plan_targets(untied_llama(), "m", defaults_only(), four_bit()), "lm_head"),
            "default skip: last parameter");
  ModelDescription head_first = untied_llama(1);
  head_first.parameter_order.pop_back();
  head_first.parameter_order.insert(head_first.parameter_order.end() - 1, "lm_head.weight");
  EXPECT_EQ(rule_of(plan_targets(head_first, "m", defaults_only(), four_bit()), "lm_head"),
            "default skip: output embedding");
  // A tied pair between two linears keeps both.
  ModelDescription tied_mlp = untied_llama(1);
  tied_mlp.tied_weights = {
      {"model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"}};
  const TargetPlan plan = plan_targets(tied_mlp, "m", defaults_only(), four_bit());
  EXPECT_EQ(rule_of(plan, "model.layers.0.mlp.gate_proj"), "default skip: tied weight");
  EXPECT_EQ(rule_of(plan, "model.layers.0.mlp.down_proj"), "quantize");
}

// ---- precedence between the steps ----------------------------------------------------------

TEST(PlanTest, KeepInFp32BeatsUserSkips) {
  ModelDescription model = untied_llama();
  model.keep_in_fp32_modules = {"down_proj"};
  const TargetPlan plan = plan_targets(model, "bnb_4bit", skipping({"mlp"}), four_bit());
  EXPECT_EQ(rule_of(plan, "model.layers.0.mlp.down_proj"),
            "keep_in_fp32 module 'down_proj' (leaf name)");
  EXPECT_EQ(rule_of(plan, "model.layers.0.mlp.gate_proj"),
            "user skip 'mlp' from llm_int8_skip_modules (substring)");
  EXPECT_EQ(plan.modules_to_not_convert, (Names{"mlp", "down_proj"}));
}

TEST(PlanTest, KeepInFp32AppliesWithoutAUserList) {
  ModelDescription model = untied_llama();
  model.keep_in_fp32_modules = {"model.layers.0"};
  const TargetPlan plan = plan_targets(model, "bnb_4bit", defaults_only(), four_bit());
  EXPECT_EQ(rule_of(plan, "model.layers.0.self_attn.v_proj"),
            "keep_in_fp32 module 'model.layers.0' (prefix)");
  EXPECT_EQ(rule_of(plan, "model.layers.1.self_attn.v_proj"), "quantize");
}

TEST(PlanTest, UserSkipBeatsDefaultSkip) {
  TargetingRequest request = skipping({"lm_head"});
  request.add_default_skips = true;
  const TargetPlan plan = plan_targets(tied_llama(), "bnb_4bit", request, four_bit());
  EXPECT_EQ(rule_of(plan, "lm_head"),
            "user skip 'lm_head' from llm_int8_skip_modules (exact name)");
}

TEST(PlanTest, DefaultSkipBeatsBlockRestriction) {
  TargetingRequest request = defaults_only();
  request.only_in_blocks = true;
  EXPECT_EQ(rule_of(plan_targets(tied_llama(), "gptq", request, four_bit()), "lm_head"),
            "default skip: tied weight");
  request.skip_modules = Names{};  // a list, even empty, turns the defaults off
  EXPECT_EQ(rule_of(plan_targets(tied_llama(), "gptq", request, four_bit()), "lm_head"),
            "outside the block container 'model.layers'");
}

TEST(PlanTest, BlockRestrictionBeatsShapeConstraints) {
  QuantizerConstraints never = four_bit();
  never.unsupported_reason = [](const ModuleInfo&) { return std::optional<std::string>("no"); };
  TargetingRequest request = skipping({});
  request.only_in_blocks = true;
  const TargetPlan plan = plan_targets(untied_llama(), "gptq", request, never);
  EXPECT_EQ(entry(plan, "lm_head").decision, Decision::Keep);
  EXPECT_EQ(entry(plan, "model.layers.0.mlp.up_proj").decision, Decision::Unsupported);
  EXPECT_EQ(plan.unsupported().size(), 35u);
}

// ---- shape constraints ---------------------------------------------------------------------

TEST(PlanTest, UnsupportedShapes) {
  // stories260K's MLP is 172 wide: gate/up/down are not multiples of 32, attention is.
  const TargetPlan plan =
      plan_targets(untied_llama(), "gptq", skipping({"lm_head"}), multiples_of(32));
  for (int layer = 0; layer < 5; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer);
    for (const char* name : {".mlp.gate_proj", ".mlp.up_proj", ".mlp.down_proj"})
      EXPECT_EQ(entry(plan, p + name).decision, Decision::Unsupported) << p + name;
    for (const char* name :
         {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj", ".self_attn.o_proj"})
      EXPECT_EQ(entry(plan, p + name).decision, Decision::Quantize) << p + name;
  }
  EXPECT_EQ(plan.unsupported().size(), 15u);
  EXPECT_EQ(rule_of(plan, "model.layers.0.mlp.down_proj"),
            "unsupported: in_features 172 and out_features 64 must be multiples of 32 (add "
            "'model.layers.0.mlp.down_proj' to llm_int8_skip_modules to keep it in full "
            "precision)");
  const TargetEntry& gate = entry(plan, "model.layers.0.mlp.gate_proj");
  EXPECT_EQ(gate.bytes_after, gate.bytes_before);
}

TEST(PlanTest, UnsupportedAdviceUsesTheGenericKeyWhenNoneIsGiven) {
  TargetingRequest request = skipping({"lm_head"});
  request.skip_key.clear();
  const TargetPlan plan = plan_targets(untied_llama(1), "gptq", request, multiples_of(32));
  EXPECT_TRUE(contains(rule_of(plan, "model.layers.0.mlp.up_proj"),
                       "to modules_to_not_convert to keep it"));
  EXPECT_EQ(rule_of(plan, "lm_head"),
            "user skip 'lm_head' from modules_to_not_convert (exact name)");
}

TEST(PlanTest, SkippingTheUnsupportedLayersResolvesThem) {
  const TargetPlan plan =
      plan_targets(untied_llama(), "gptq", skipping({"lm_head", "mlp"}), multiples_of(32));
  EXPECT_TRUE(plan.unsupported().empty());
  EXPECT_EQ(plan.quantized_modules().size(), 20u);
}

// ---- blocks --------------------------------------------------------------------------------

TEST(PlanTest, OnlyInBlocksWithModulesInBlock) {
  TargetingRequest request = skipping({});
  request.only_in_blocks = true;
  request.modules_in_block =
      Names{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.down_proj"};
  const TargetPlan plan = plan_targets(untied_llama(), "gptq", request, four_bit());
  EXPECT_EQ(plan.block_container, "model.layers");
  EXPECT_EQ(plan.quantized_modules().size(), 20u);
  EXPECT_TRUE(plan.quantizes("model.layers.4.mlp.down_proj"));
  EXPECT_EQ(rule_of(plan, "model.layers.4.mlp.up_proj"), "not in modules_in_block_to_quantize");
  EXPECT_EQ(rule_of(plan, "model.layers.0.self_attn.o_proj"),
            "not in modules_in_block_to_quantize");
  EXPECT_EQ(rule_of(plan, "lm_head"), "outside the block container 'model.layers'");
}

TEST(PlanTest, ExplicitBlockContainer) {
  TargetingRequest request = skipping({});
  request.only_in_blocks = true;
  request.block_container = "model.layers.0";
  const TargetPlan plan = plan_targets(untied_llama(), "gptq", request, four_bit());
  EXPECT_EQ(plan.block_container, "model.layers.0");
  EXPECT_EQ(plan.quantized_modules().size(), 7u);
  EXPECT_EQ(rule_of(plan, "model.layers.1.mlp.up_proj"),
            "outside the block container 'model.layers.0'");

  // A dot boundary: block 1 does not contain block 10.
  request.block_container = "model.layers.1";
  const TargetPlan twelve = plan_targets(untied_llama(12), "gptq", request, four_bit());
  EXPECT_EQ(twelve.quantized_modules().size(), 7u);
  EXPECT_EQ(rule_of(twelve, "model.layers.10.mlp.up_proj"),
            "outside the block container 'model.layers.1'");

  request.block_container = "model.blocks";
  EXPECT_EQ(plan_error(untied_llama(), request).key(), "block_name_to_quantize");
}

TEST(PlanTest, ModulesInBlockWithoutBlockRestriction) {
  TargetingRequest request = skipping({});
  request.modules_in_block = Names{"lm_head"};
  const TargetPlan plan = plan_targets(untied_llama(), "gptq", request, four_bit());
  EXPECT_EQ(plan.quantized_modules(), Names{"lm_head"});
  EXPECT_EQ(plan.block_container, "");
}

TEST(PlanTest, OptAndGpt2Containers) {
  TargetingRequest request = skipping({});
  request.only_in_blocks = true;
  const TargetPlan o = plan_targets(opt(), "gptq", request, four_bit());
  EXPECT_EQ(o.block_container, "model.decoder.layers");
  EXPECT_EQ(o.quantized_modules().size(), 3u * 6);
  EXPECT_EQ(rule_of(o, "model.decoder.final_layer_norm"), "not a linear layer");
  const TargetPlan g = plan_targets(gpt2(), "gptq", request, four_bit());
  EXPECT_EQ(g.block_container, "transformer.h");
  EXPECT_EQ(g.quantized_modules().size(), 2u * 4);
}

// ---- GPT-2's Conv1D ------------------------------------------------------------------------

TEST(PlanTest, Gpt2Conv1DLayersAreLinear) {
  const TargetPlan plan = plan_targets(gpt2(), "bnb_4bit", defaults_only(), four_bit());
  const TargetEntry& c_attn = entry(plan, "transformer.h.0.attn.c_attn");
  EXPECT_EQ(c_attn.decision, Decision::Quantize);
  EXPECT_EQ(c_attn.type, "Conv1D");
  EXPECT_EQ(c_attn.in_features, 64);
  EXPECT_EQ(c_attn.out_features, 192);
  EXPECT_EQ(entry(plan, "transformer.h.1.mlp.c_proj").in_features, 256);
  EXPECT_EQ(rule_of(plan, "lm_head"), "default skip: tied weight");
  EXPECT_EQ(rule_of(plan, "transformer.ln_f"), "not a linear layer");
  EXPECT_EQ(rule_of(plan, "transformer.wpe"), "not a linear layer");
  EXPECT_EQ(plan.quantized_modules().size(), 8u);
  EXPECT_EQ(plan.entries.size(), 2u + 2 * 6 + 2);
  // 173824 values in the modules, less the tied head that is stored once (as transformer.wte);
  // the quantized Conv1D weights (49152 per block) shrink to half a byte and their fp32 biases
  // (576 per block) are dropped by this fake size function.
  const int64_t stored =
      173824 * 4 - entry(plan, "lm_head").in_features * entry(plan, "lm_head").out_features * 4;
  EXPECT_EQ(entry(plan, "lm_head").bytes_before, 0);
  EXPECT_EQ(plan.bytes_before(), stored);
  EXPECT_EQ(plan.bytes_after(), stored - 2 * (49152 + 576) * 4 + 2 * 49152 / 2);
}

// ---- fused groups --------------------------------------------------------------------------

TEST(PlanTest, SplitFusedGroupIsAConfigError) {
  const ConfigError e = plan_error(untied_llama(), skipping({"q_proj"}));
  EXPECT_EQ(e.key(), kBnbKey);
  const std::string message = e.what();
  EXPECT_TRUE(contains(message, "fused group 'model.layers.0.self_attn.qkv_proj'")) << message;
  EXPECT_TRUE(contains(message,
                       "model.layers.0.self_attn.q_proj -> keep (user skip 'q_proj' from "
                       "llm_int8_skip_modules (leaf name))"))
      << message;
  EXPECT_TRUE(contains(message, "model.layers.0.self_attn.k_proj -> quantize (quantize)"))
      << message;
  EXPECT_TRUE(contains(message, "model.layers.0.self_attn.v_proj -> quantize (quantize)"))
      << message;
  EXPECT_TRUE(contains(message,
                       "decide them together: skip all of model.layers.0.self_attn.q_proj, "
                       "model.layers.0.self_attn.k_proj, model.layers.0.self_attn.v_proj or none"))
      << message;
}

TEST(PlanTest, SplitGateUpGroup) {
  const std::string message = plan_error(untied_llama(), skipping({R"(re:.*\.gate_proj)"})).what();
  EXPECT_TRUE(contains(message, "fused group 'model.layers.0.mlp.gate_up_proj'")) << message;
  EXPECT_TRUE(contains(message,
                       "skip all of model.layers.0.mlp.gate_proj, "
                       "model.layers.0.mlp.up_proj or none"))
      << message;
}

TEST(PlanTest, ShapeConstraintCanSplitAGroup) {
  // k and v are 32 wide, q is 64: a 64-multiple restriction rejects only k and v.
  const std::string message =
      plan_error(untied_llama(), skipping({"lm_head", "mlp"}), multiples_of(64)).what();
  EXPECT_TRUE(contains(message, "model.layers.0.self_attn.q_proj -> quantize")) << message;
  EXPECT_TRUE(contains(message, "model.layers.0.self_attn.k_proj -> unsupported (unsupported: "))
      << message;
}

TEST(PlanTest, SplitOptGroup) {
  const std::string message = plan_error(opt(), skipping({"q_proj"})).what();
  EXPECT_TRUE(contains(message, "fused group 'model.decoder.layers.0.self_attn.qkv_proj'"))
      << message;
}

TEST(PlanTest, WholeGroupsMayBeSkippedAndAbsentMembersAreIgnored) {
  ModelDescription model = untied_llama();
  model.fused_groups.push_back({"odd", {"model.layers.0.mlp.up_proj", "model.layers.0.mlp.w3"}});
  const TargetPlan plan =
      plan_targets(model, "bnb_4bit", skipping({"re:.*_proj", "lm_head"}), four_bit());
  EXPECT_TRUE(plan.quantized_modules().empty());
  // Differing rules are fine as long as the decisions agree.
  EXPECT_NO_THROW(
      plan_targets(model, "bnb_4bit", skipping({"q_proj", "k_proj", "*.v_proj"}), four_bit()));
}

// ---- rule errors ---------------------------------------------------------------------------

TEST(PlanTest, BadUserRuleIsReportedWithItsIndex) {
  const ConfigError e = plan_error(untied_llama(), skipping({"lm_head", "re:("}));
  EXPECT_EQ(e.key(), "llm_int8_skip_modules[1]");
  EXPECT_TRUE(contains(e.detail(), "'re:('")) << e.detail();
  // Even a malformed rule that would match nothing.
  EXPECT_EQ(plan_error(untied_llama(), skipping({"x.[9-1]"})).key(), "llm_int8_skip_modules[0]");
}

TEST(PlanTest, BadKeepInFp32RuleNamesTheArchitectureList) {
  ModelDescription model = untied_llama(1);
  model.keep_in_fp32_modules = {"wo", ""};
  EXPECT_EQ(plan_error(model, defaults_only()).key(), "_keep_in_fp32_modules[1]");
}

}  // namespace
}  // namespace qplug
