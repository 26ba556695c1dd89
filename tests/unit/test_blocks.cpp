// GPTQ-style block discovery (FORMATS.md C.4): container, blocks, layers, modules_in_block.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model_descriptions.hpp"
#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

using Names = std::vector<std::string>;
using testing::container;
using testing::gpt2;
using testing::opt;
using testing::untied_llama;

// A model whose blocks live where no pattern looks.
ModelDescription backbone_model() {
  ModelDescription d;
  d.model_type = "custom";
  testing::add(d, container("backbone", "Backbone"));
  testing::add(d, container("backbone.hidden", "ModuleList"));  // contains an "h", not "h."
  testing::add(d, container("backbone.hidden.0", "Block"));
  testing::add(d, testing::linear("backbone.hidden.0.proj", 8, 8, false, DType::F32));
  return d;
}

ConfigError container_error(const ModelDescription& d, const std::optional<std::string>& name) {
  try {
    find_block_container(d, name);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return ConfigError("none");
}

TEST(BlockPatternsTest, OptimumOrder) {
  EXPECT_EQ(block_patterns(),
            (Names{"transformer.h", "model.decoder.layers", "gpt_neox.layers", "model.layers",
                   "model.language_model.layers", "h", "decoder.layers", "layers"}));
}

TEST(FindBlockContainerTest, DiscoversTheFirstPattern) {
  EXPECT_EQ(find_block_container(untied_llama(), std::nullopt), "model.layers");
  EXPECT_EQ(find_block_container(gpt2(), std::nullopt), "transformer.h");
  EXPECT_EQ(find_block_container(opt(), std::nullopt), "model.decoder.layers");
}

TEST(FindBlockContainerTest, PatternOrderDecidesBetweenCandidates) {
  // Both "h" and "layers" name modules here; "h" comes first in BLOCK_PATTERNS.
  ModelDescription d;
  testing::add(d, container("layers", "ModuleList"));
  testing::add(d, container("h", "ModuleList"));
  testing::add(d, container("h.0", "Block"));
  EXPECT_EQ(find_block_container(d, std::nullopt), "h");
}

TEST(FindBlockContainerTest, PatternsMatchAtADotBoundary) {
  const ConfigError e = container_error(backbone_model(), std::nullopt);
  EXPECT_EQ(e.key(), "block_name_to_quantize");
  EXPECT_NE(e.detail().find("custom"), std::string::npos) << e.detail();
  EXPECT_NE(e.detail().find("model.decoder.layers"), std::string::npos) << e.detail();
  EXPECT_NE(e.detail().find("set block_name_to_quantize"), std::string::npos) << e.detail();
}

TEST(FindBlockContainerTest, ExplicitName) {
  EXPECT_EQ(find_block_container(backbone_model(), std::string("backbone.hidden")),
            "backbone.hidden");
  // An explicit name wins over discovery.
  EXPECT_EQ(find_block_container(untied_llama(), std::string("model")), "model");
}

TEST(FindBlockContainerTest, ExplicitNameMustBeAModule) {
  const ConfigError e = container_error(untied_llama(), std::string("model.blocks"));
  EXPECT_EQ(e.key(), "block_name_to_quantize");
  EXPECT_NE(e.detail().find("'model.blocks'"), std::string::npos) << e.detail();
  EXPECT_NE(e.detail().find("found: model.layers"), std::string::npos) << e.detail();
  // A prefix of module names that is not itself a module is not accepted.
  EXPECT_NE(container_error(untied_llama(), std::string("model.lay")).detail().find("model.lay"),
            std::string::npos);
  EXPECT_NE(container_error(backbone_model(), std::string("x")).detail().find("found: none"),
            std::string::npos);
}

TEST(GetBlocksTest, DirectChildrenInDefinitionOrder) {
  EXPECT_EQ(get_blocks(untied_llama(3), "model.layers"),
            (Names{"model.layers.0", "model.layers.1", "model.layers.2"}));
  // Definition order, not string order: 10 and 11 come after 9.
  const Names twelve = get_blocks(untied_llama(12), "model.layers");
  ASSERT_EQ(twelve.size(), 12u);
  EXPECT_EQ(twelve[2], "model.layers.2");
  EXPECT_EQ(twelve[10], "model.layers.10");
  EXPECT_EQ(get_blocks(gpt2(), "transformer.h"), (Names{"transformer.h.0", "transformer.h.1"}));
  EXPECT_TRUE(get_blocks(untied_llama(), "model.nothing").empty());
}

TEST(GetLayersTest, LinearsStrictlyUnderThePrefix) {
  const Names layer1 = get_layers(untied_llama(12), "model.layers.1");
  EXPECT_EQ(layer1, (Names{"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
                           "model.layers.1.self_attn.v_proj", "model.layers.1.self_attn.o_proj",
                           "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj",
                           "model.layers.1.mlp.down_proj"}));
  // The prefix itself is never a layer, even when it is linear.
  EXPECT_TRUE(get_layers(untied_llama(), "lm_head").empty());
}

TEST(GetLayersTest, WholeContainerExcludesHeadEmbeddingsAndNorms) {
  const Names all = get_layers(untied_llama(5), "model.layers");
  EXPECT_EQ(all.size(), 35u);
  EXPECT_EQ(all.front(), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(all.back(), "model.layers.4.mlp.down_proj");
  for (const auto& name : all)
    EXPECT_EQ(name.find("norm"), std::string::npos) << name;
}

TEST(GetLayersTest, Conv1DCountsAsLinear) {
  EXPECT_EQ(get_layers(gpt2(), "transformer.h.1"),
            (Names{"transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj",
                   "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj"}));
}

TEST(GetLayersTest, EmptyPrefixIsTheWholeModel) {
  const Names all = get_layers(untied_llama(2), "");
  EXPECT_EQ(all.size(), 15u);
  EXPECT_EQ(all.back(), "lm_head");
}

TEST(FilterModulesInBlockTest, PlainEndsWith) {
  const Names layers = get_layers(untied_llama(1), "model.layers.0");
  EXPECT_EQ(filter_modules_in_block(layers, {"self_attn.q_proj", "mlp.down_proj"}),
            (Names{"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"}));
  // Not a component match: "proj" is the end of every one of them, as in optimum.
  EXPECT_EQ(filter_modules_in_block(layers, {"proj"}), layers);
  EXPECT_EQ(filter_modules_in_block(layers, {"_proj.weight"}), Names{});
  // An empty list keeps nothing.
  EXPECT_TRUE(filter_modules_in_block(layers, {}).empty());
}

}  // namespace
}  // namespace qplug
