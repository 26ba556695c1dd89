// transformers' default skips (FORMATS.md E.2's table) and the merge with user lists.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model_descriptions.hpp"
#include "qplug/core/targeting.hpp"

namespace qplug {
namespace {

using Names = std::vector<std::string>;
using testing::gpt2;
using testing::opt;
using testing::tied_llama;
using testing::untied_llama;

Names reasons(const std::vector<DefaultSkip>& skips) {
  Names out;
  for (const auto& s : skips)
    out.push_back(s.module + ": " + s.reason);
  return out;
}

// ---- FORMATS.md E.2, expected default-skip results (module names) ---------------------------

TEST(KeysToNotConvertTest, Gpt2) {
  EXPECT_EQ(get_keys_to_not_convert(gpt2()),
            (Names{"lm_head", "transformer.wte", "transformer.ln_f"}));
}

TEST(KeysToNotConvertTest, TiedLlama) {
  EXPECT_EQ(get_keys_to_not_convert(tied_llama()),
            (Names{"lm_head", "model.embed_tokens", "model.norm"}));
}

TEST(KeysToNotConvertTest, UntiedLlama) {
  // Its last parameter is lm_head.weight, which is also the output embedding.
  EXPECT_EQ(untied_llama().parameter_order.back(), "lm_head.weight");
  EXPECT_EQ(get_keys_to_not_convert(untied_llama()), (Names{"lm_head"}));
}

TEST(KeysToNotConvertTest, Opt) {
  // OPTDecoder registers final_layer_norm before its layers: the last parameter is in layer L-1.
  EXPECT_EQ(get_keys_to_not_convert(opt()), (Names{"lm_head", "model.decoder.embed_tokens",
                                                   "model.decoder.layers.2.final_layer_norm"}));
  testing::OptShape no_final_norm;
  no_final_norm.final_layer_norm = false;
  no_final_norm.layers = 4;
  EXPECT_EQ(
      get_keys_to_not_convert(opt(no_final_norm)),
      (Names{"lm_head", "model.decoder.embed_tokens", "model.decoder.layers.3.final_layer_norm"}));
}

// ---- why each default is there -------------------------------------------------------------

TEST(DefaultSkipsTest, FirstReasonWins) {
  EXPECT_EQ(reasons(default_skips(gpt2())),
            (Names{"lm_head: tied weight", "transformer.wte: tied weight",
                   "transformer.ln_f: last parameter"}));
  // lm_head is both the last parameter and the output embedding; the earlier reason is kept.
  EXPECT_EQ(reasons(default_skips(untied_llama())), (Names{"lm_head: last parameter"}));
}

TEST(DefaultSkipsTest, OutputEmbeddingThatIsNotTheLastParameter) {
  ModelDescription d = untied_llama(2);
  // A head registered before the final norm (as some architectures do).
  d.parameter_order.pop_back();
  d.parameter_order.insert(d.parameter_order.end() - 1, "lm_head.weight");
  ASSERT_EQ(d.parameter_order.back(), "model.norm.weight");
  EXPECT_EQ(reasons(default_skips(d)),
            (Names{"model.norm: last parameter", "lm_head: output embedding"}));
}

TEST(DefaultSkipsTest, NoOutputEmbeddingAndNothingTied) {
  ModelDescription d = untied_llama(1);
  d.output_embedding.clear();
  d.parameter_order.pop_back();  // as if the model had no head
  EXPECT_EQ(get_keys_to_not_convert(d), (Names{"model.norm"}));
}

TEST(DefaultSkipsTest, EmptyModel) {
  EXPECT_TRUE(get_keys_to_not_convert(ModelDescription{}).empty());
}

TEST(DefaultSkipsTest, DottedLocalParameterNamesResolveToTheirModule) {
  ModelDescription d = untied_llama(1);
  // A quantized head: its tensors have dotted local names.
  ModuleInfo& head = d.modules.back();
  head.params.push_back(testing::tensor("weight.absmax", {512}, DType::F32));
  d.parameter_order.push_back("lm_head.weight.absmax");
  d.output_embedding.clear();
  EXPECT_EQ(get_keys_to_not_convert(d), (Names{"lm_head"}));
}

TEST(DefaultSkipsTest, TiedPairsInDeclarationOrder) {
  ModelDescription d = untied_llama(1);
  d.tied_weights = {{"model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"},
                    {"lm_head.weight", "model.embed_tokens.weight"}};
  EXPECT_EQ(get_keys_to_not_convert(d),
            (Names{"model.layers.0.mlp.up_proj", "model.layers.0.mlp.gate_proj", "lm_head",
                   "model.embed_tokens"}));
}

// ---- merging -------------------------------------------------------------------------------

TEST(ModulesToNotConvertTest, DefaultsWhenTheUserGaveNoList) {
  EXPECT_EQ(get_modules_to_not_convert(tied_llama(), std::nullopt, {}, false),
            (Names{"lm_head", "model.embed_tokens", "model.norm"}));
}

TEST(ModulesToNotConvertTest, UserListReplacesDefaults) {
  EXPECT_EQ(get_modules_to_not_convert(tied_llama(), Names{"mlp", "o_proj"}, {}, false),
            (Names{"mlp", "o_proj"}));
  // An empty list is a list: no defaults either.
  EXPECT_TRUE(get_modules_to_not_convert(tied_llama(), Names{}, {}, false).empty());
}

TEST(ModulesToNotConvertTest, AddDefaultSkipsKeepsBoth) {
  EXPECT_EQ(get_modules_to_not_convert(gpt2(), Names{"mlp.c_proj"}, {}, true),
            (Names{"lm_head", "transformer.wte", "transformer.ln_f", "mlp.c_proj"}));
  // add_default_skips without a user list is just the defaults.
  EXPECT_EQ(get_modules_to_not_convert(gpt2(), std::nullopt, {}, true),
            get_keys_to_not_convert(gpt2()));
}

TEST(ModulesToNotConvertTest, KeepInFp32ComesLast) {
  EXPECT_EQ(get_modules_to_not_convert(untied_llama(), std::nullopt, {"wo", "norm"}, false),
            (Names{"lm_head", "wo", "norm"}));
  EXPECT_EQ(get_modules_to_not_convert(untied_llama(), Names{"mlp"}, {"wo"}, false),
            (Names{"mlp", "wo"}));
}

TEST(ModulesToNotConvertTest, DeduplicatesKeepingTheFirstPosition) {
  EXPECT_EQ(get_modules_to_not_convert(tied_llama(), Names{"mlp", "lm_head", "mlp", "model.norm"},
                                       {"mlp", "lm_head", "wo"}, true),
            (Names{"lm_head", "model.embed_tokens", "model.norm", "mlp", "wo"}));
}

}  // namespace
}  // namespace qplug
