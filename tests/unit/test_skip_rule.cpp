// The skip-rule language: every form, descendants, transformers' quirks, errors, precedence.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

const std::string kUpProj = "model.layers.0.mlp.up_proj";
const std::string kDownProj = "model.layers.0.mlp.down_proj";

MatchKind kind_of(const std::string& rule, const std::string& module,
                  const std::string& type = "Linear") {
  return SkipRule(rule).match(module, type);
}

// The ConfigError a rule raises; fails the test when it parses.
ConfigError parse_error(const std::string& rule, const std::string& source) {
  try {
    SkipRule parsed(rule, source);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "rule '" << rule << "' parsed";
  return ConfigError("parsed");
}

TEST(MatchKindTest, NamesEveryKind) {
  EXPECT_STREQ(to_string(MatchKind::None), "no match");
  EXPECT_STREQ(to_string(MatchKind::Exact), "exact name");
  EXPECT_STREQ(to_string(MatchKind::Prefix), "prefix");
  EXPECT_STREQ(to_string(MatchKind::LeafName), "leaf name");
  EXPECT_STREQ(to_string(MatchKind::Substring), "substring");
  EXPECT_STREQ(to_string(MatchKind::LayerRange), "layer range");
  EXPECT_STREQ(to_string(MatchKind::Glob), "glob");
  EXPECT_STREQ(to_string(MatchKind::Regex), "regex");
  EXPECT_STREQ(to_string(MatchKind::Type), "type");
}

TEST(SkipRuleTest, KeepsTextAndSource) {
  const SkipRule rule("lm_head", "llm_int8_skip_modules[0]");
  EXPECT_EQ(rule.text(), "lm_head");
  EXPECT_EQ(rule.source(), "llm_int8_skip_modules[0]");
}

// ---- plain names ---------------------------------------------------------------------------

TEST(PlainRuleTest, ExactName) {
  EXPECT_EQ(kind_of("lm_head", "lm_head"), MatchKind::Exact);
  EXPECT_EQ(kind_of(kDownProj, kDownProj), MatchKind::Exact);
}

TEST(PlainRuleTest, AncestorAtADotBoundaryIsAPrefix) {
  EXPECT_EQ(kind_of("model.layers.0", kUpProj), MatchKind::Prefix);
  EXPECT_EQ(kind_of("model", kUpProj), MatchKind::Prefix);
  // Not at a dot boundary: layer 1 is not an ancestor of layer 11.
  EXPECT_EQ(kind_of("model.layers.1", "model.layers.11.mlp.up_proj"), MatchKind::None);
  EXPECT_EQ(kind_of("model.lay", kUpProj), MatchKind::None);
}

TEST(PlainRuleTest, LeafName) {
  EXPECT_EQ(kind_of("down_proj", kDownProj), MatchKind::LeafName);
  EXPECT_EQ(kind_of("up_proj", kDownProj), MatchKind::None);
  // The leaf must be the whole last component, not its end.
  EXPECT_EQ(kind_of("proj", kDownProj), MatchKind::None);
  EXPECT_EQ(kind_of("up", kUpProj), MatchKind::None);
  EXPECT_EQ(kind_of("lm_head", "lm_head_extra"), MatchKind::None);
}

TEST(PlainRuleTest, TransformersSubstringRule) {
  EXPECT_EQ(kind_of("mlp", kUpProj), MatchKind::Substring);
  EXPECT_EQ(kind_of("layers.0", kUpProj), MatchKind::Substring);
  EXPECT_EQ(kind_of("layers.1", "model.layers.1.mlp"), MatchKind::Substring);
  // "<rule>." must occur: layer 1 does not reach into layer 11.
  EXPECT_EQ(kind_of("layers.1", "model.layers.11.mlp"), MatchKind::None);
  // transformers does not ask for a dot before the rule; we keep the quirk so loaders agree.
  EXPECT_EQ(kind_of("ers.1", "model.layers.1.mlp"), MatchKind::Substring);
  // "mlp." must occur: "mlpx" is another module.
  EXPECT_EQ(kind_of("mlp", "model.layers.0.mlpx.up_proj"), MatchKind::None);
}

TEST(PlainRuleTest, MatchesNameUsesTheSameSemantics) {
  const SkipRule rule("mlp");
  EXPECT_TRUE(rule.matches_name("model.layers.0.mlp"));
  EXPECT_TRUE(rule.matches_name(kUpProj));
  EXPECT_FALSE(rule.matches_name("model.layers.0.self_attn.q_proj"));
}

TEST(PlainRuleTest, TypeDoesNotMatter) {
  EXPECT_EQ(kind_of("lm_head", "lm_head", "Embedding"), MatchKind::Exact);
  EXPECT_EQ(kind_of("Linear", "lm_head", "Linear"), MatchKind::None);
}

// ---- globs ---------------------------------------------------------------------------------

TEST(GlobRuleTest, StarSpansDots) {
  EXPECT_EQ(kind_of("*.norm", "model.norm", "LlamaRMSNorm"), MatchKind::Glob);
  EXPECT_EQ(kind_of("*_proj", kUpProj), MatchKind::Glob);
  EXPECT_EQ(kind_of("model.*.q_proj", "model.layers.3.self_attn.q_proj"), MatchKind::Glob);
  EXPECT_EQ(kind_of("*", "lm_head"), MatchKind::Glob);
  EXPECT_EQ(kind_of("*.norm", "model.layers.0.input_layernorm"), MatchKind::None);
  EXPECT_EQ(kind_of("model.*.q_proj", "model.layers.3.self_attn.k_proj"), MatchKind::None);
}

TEST(GlobRuleTest, FullMatchOnly) {
  EXPECT_EQ(kind_of("layers.*", kUpProj), MatchKind::None);
  EXPECT_EQ(kind_of("*.up", kUpProj), MatchKind::None);
}

TEST(GlobRuleTest, QuestionMarkIsExactlyOneCharacter) {
  EXPECT_EQ(kind_of("model.layers.?.mlp.up_proj", kUpProj), MatchKind::Glob);
  EXPECT_EQ(kind_of("model.layers.?.mlp.up_proj", "model.layers.11.mlp.up_proj"), MatchKind::None);
  EXPECT_EQ(kind_of("lm_head?", "lm_head"), MatchKind::None);
}

TEST(GlobRuleTest, CoversDescendants) {
  EXPECT_EQ(kind_of("model.*.mlp", kUpProj), MatchKind::Glob);
  EXPECT_EQ(kind_of("model.layers.?", kUpProj), MatchKind::Glob);
  EXPECT_FALSE(SkipRule("model.*.mlp").matches_name(kUpProj));
  EXPECT_TRUE(SkipRule("model.*.mlp").matches_name("model.layers.0.mlp"));
}

TEST(GlobRuleTest, ManyStarsStillAnswer) {
  const std::string name = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z";
  EXPECT_EQ(kind_of("*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.z", name), MatchKind::Glob);
  EXPECT_EQ(kind_of("*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.q", name),
            MatchKind::None);
}

// ---- layer ranges --------------------------------------------------------------------------

TEST(LayerRangeRuleTest, InclusiveRange) {
  const SkipRule rule("model.layers.[0-3].mlp");
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(rule.match("model.layers." + std::to_string(i) + ".mlp.up_proj", "Linear"),
              MatchKind::LayerRange)
        << i;
  EXPECT_EQ(rule.match("model.layers.4.mlp.up_proj", "Linear"), MatchKind::None);
  EXPECT_EQ(rule.match("model.layers.0.self_attn.q_proj", "Linear"), MatchKind::None);
}

TEST(LayerRangeRuleTest, WholeNumbersOnly) {
  // 11 and 13 start with digits in the range, but the numbers are not in it.
  EXPECT_EQ(kind_of("model.layers.[0-3].mlp", "model.layers.11.mlp.up_proj"), MatchKind::None);
  EXPECT_EQ(kind_of("model.layers.[0-3].mlp", "model.layers.13.mlp"), MatchKind::None);
  // A star after the range cannot swallow the rest of the number either.
  EXPECT_EQ(kind_of("model.layers.[1]*", "model.layers.11.mlp"), MatchKind::None);
  EXPECT_EQ(kind_of("model.layers.[1]*", "model.layers.1.mlp"), MatchKind::LayerRange);
  // Nor can a star before it start the number in the middle.
  EXPECT_EQ(kind_of("model.layers.*[1].mlp", "model.layers.21.mlp"), MatchKind::None);
}

TEST(LayerRangeRuleTest, ListsAndMixedRanges) {
  const SkipRule rule("model.layers.[0,2,5-7]");
  for (int i : {0, 2, 5, 6, 7})
    EXPECT_EQ(rule.match("model.layers." + std::to_string(i) + ".mlp.down_proj", "Linear"),
              MatchKind::LayerRange)
        << i;
  for (int i : {1, 3, 4, 8, 10, 25})
    EXPECT_EQ(rule.match("model.layers." + std::to_string(i) + ".mlp.down_proj", "Linear"),
              MatchKind::None)
        << i;
}

TEST(LayerRangeRuleTest, MultiDigitBounds) {
  EXPECT_EQ(kind_of("model.layers.[10-12]", "model.layers.12.mlp"), MatchKind::LayerRange);
  EXPECT_EQ(kind_of("model.layers.[10-12]", "model.layers.9.mlp"), MatchKind::None);
  EXPECT_EQ(kind_of("model.layers.[10-12]", "model.layers.120.mlp"), MatchKind::None);
  EXPECT_EQ(kind_of("model.layers.[7]", "model.layers.99999999999999999999999.mlp"),
            MatchKind::None);
}

TEST(LayerRangeRuleTest, RangeWithGlobReportsLayerRange) {
  EXPECT_EQ(kind_of("*.[0-1].*_proj", "model.layers.1.self_attn.q_proj"), MatchKind::LayerRange);
  EXPECT_EQ(kind_of("*.[0-1].*_proj", "model.layers.2.self_attn.q_proj"), MatchKind::None);
}

TEST(LayerRangeRuleTest, MalformedRangesAreConfigErrors) {
  for (const std::string rule :
       {"model.layers.[]", "model.layers.[3-1]", "model.layers.[a]", "model.layers.[1-]",
        "model.layers.[-1]", "model.layers.[0-3", "model.layers.0-3]", "model.layers.[1,,2]",
        "model.layers.[1,2,]", "model.layers.[0-1-2]", "model.layers.[ 1]"}) {
    const ConfigError e = parse_error(rule, "llm_int8_skip_modules[3]");
    EXPECT_EQ(e.key(), "llm_int8_skip_modules[3]") << rule;
    EXPECT_NE(std::string(e.what()).find("llm_int8_skip_modules[3]"), std::string::npos) << rule;
    EXPECT_NE(e.detail().find("'" + rule + "'"), std::string::npos) << e.detail();
  }
}

// ---- regular expressions -------------------------------------------------------------------

TEST(RegexRuleTest, FullMatch) {
  EXPECT_EQ(kind_of(R"(re:model\.layers\.\d+\.mlp\.up_proj)", kUpProj), MatchKind::Regex);
  // Anchored: a regex that matches only part of the name does not match.
  EXPECT_EQ(kind_of("re:layers", "model.layers"), MatchKind::None);
  EXPECT_EQ(kind_of("re:lm_hea", "lm_head"), MatchKind::None);
  EXPECT_EQ(kind_of("re:(q|k|v)_proj", "q_proj"), MatchKind::Regex);
}

TEST(RegexRuleTest, CoversDescendants) {
  const SkipRule rule(R"(re:model\.layers\.\d+\.mlp)");
  EXPECT_EQ(rule.match(kUpProj, "Linear"), MatchKind::Regex);
  EXPECT_EQ(rule.match("model.layers.0.self_attn.q_proj", "Linear"), MatchKind::None);
  EXPECT_FALSE(rule.matches_name(kUpProj));
  EXPECT_TRUE(rule.matches_name("model.layers.17.mlp"));
}

TEST(RegexRuleTest, InvalidRegexIsAConfigError) {
  const ConfigError e = parse_error("re:model.(layers", "modules_to_not_convert[1]");
  EXPECT_EQ(e.key(), "modules_to_not_convert[1]");
  EXPECT_NE(e.detail().find("'re:model.(layers'"), std::string::npos) << e.detail();
  EXPECT_NE(e.detail().find("regular expression"), std::string::npos) << e.detail();
  EXPECT_EQ(parse_error("re:", "x[0]").key(), "x[0]");
}

// ---- module types --------------------------------------------------------------------------

TEST(TypeRuleTest, TypeEquality) {
  EXPECT_EQ(kind_of("type:Embedding", "model.embed_tokens", "Embedding"), MatchKind::Type);
  // Equality, not inheritance or substring.
  EXPECT_EQ(
      kind_of("type:Embedding", "model.decoder.embed_positions", "OPTLearnedPositionalEmbedding"),
      MatchKind::None);
  EXPECT_EQ(kind_of("type:Linear", "lm_head", "Conv1D"), MatchKind::None);
  EXPECT_FALSE(SkipRule("type:Embedding").matches_name("Embedding"));
}

TEST(TypeRuleTest, EmptyTypeIsAConfigError) {
  EXPECT_NE(parse_error("type:", "skip[4]").detail().find("'type:'"), std::string::npos);
}

TEST(SkipRuleTest, EmptyRuleIsAConfigError) {
  const ConfigError e = parse_error("", "llm_int8_skip_modules[0]");
  EXPECT_EQ(e.key(), "llm_int8_skip_modules[0]");
  EXPECT_NE(e.detail().find("empty"), std::string::npos) << e.detail();
}

TEST(SkipRuleTest, ErrorWithoutSourceStillNamesTheRule) {
  const ConfigError e = parse_error("re:[", "");
  EXPECT_EQ(e.key(), "");
  EXPECT_NE(std::string(e.what()).find("'re:['"), std::string::npos) << e.what();
}

// ---- precedence ----------------------------------------------------------------------------

TEST(MatchRulesTest, ReportsTheStrongestKind) {
  // Listed weakest first, so list order alone would pick the wrong one.
  std::vector<std::string> texts = {
      "type:Linear", R"(re:.*down_proj)", "*.down_proj",    "model.layers.[0].mlp.down_proj",
      "mlp",         "down_proj",         "model.layers.0", kDownProj};
  const std::vector<MatchKind> expected = {
      MatchKind::Type,      MatchKind::Regex,    MatchKind::Glob,   MatchKind::LayerRange,
      MatchKind::Substring, MatchKind::LeafName, MatchKind::Prefix, MatchKind::Exact};
  // Dropping the strongest rule each time exposes the next kind down.
  while (!texts.empty()) {
    std::vector<SkipRule> rules(texts.begin(), texts.end());
    const RuleMatch m = match_rules(rules, kDownProj, "Linear");
    ASSERT_TRUE(m);
    EXPECT_EQ(m.kind, expected[texts.size() - 1]) << texts.back();
    EXPECT_EQ(m.rule, &rules.back()) << texts.back();
    texts.pop_back();
  }
}

TEST(MatchRulesTest, TiesGoToTheEarlierRule) {
  const std::vector<SkipRule> rules = {SkipRule("lm_head"), SkipRule("model.*"),
                                       SkipRule("*.mlp.*")};
  const RuleMatch m = match_rules(rules, kUpProj, "Linear");
  EXPECT_EQ(m.kind, MatchKind::Glob);
  EXPECT_EQ(m.rule, &rules[1]);
}

TEST(MatchRulesTest, NoMatch) {
  const std::vector<SkipRule> rules = {SkipRule("lm_head"), SkipRule("type:Embedding")};
  const RuleMatch m = match_rules(rules, kUpProj, "Linear");
  EXPECT_FALSE(m);
  EXPECT_EQ(m.kind, MatchKind::None);
  EXPECT_EQ(m.rule, nullptr);
  EXPECT_FALSE(match_rules({}, kUpProj, "Linear"));
}

}  // namespace
}  // namespace qplug
