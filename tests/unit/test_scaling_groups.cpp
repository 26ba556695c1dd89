// AWQ's scaling groups as the architectures declare them (FORMATS.md D.2), and the two model
// entry points the scale search relies on: running one module of a block on its own, and
// folding scales into the op in front of a group without changing what the model computes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "model_test_util.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

using Names = std::vector<std::string>;

std::vector<ScalingGroup> groups_of(const Value& config) {
  return testing::random_model(config)->describe().scaling_groups;
}

TEST(ScalingGroups, LlamaWithGroupedQueryAttentionHasNoValueToOutputGroup) {
  const auto groups = groups_of(testing::llama_family_config("llama", 2));
  ASSERT_EQ(groups.size(), 6u);  // 3 per block: v_proj and o_proj differ in shape under GQA
  EXPECT_EQ(groups[0].prev_op, "model.layers.0.input_layernorm");
  EXPECT_EQ(groups[0].linears,
            (Names{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                   "model.layers.0.self_attn.v_proj"}));
  EXPECT_EQ(groups[0].inspect, "model.layers.0.self_attn");
  EXPECT_EQ(groups[1].prev_op, "model.layers.0.post_attention_layernorm");
  EXPECT_EQ(groups[1].linears,
            (Names{"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"}));
  EXPECT_EQ(groups[1].inspect, "model.layers.0.mlp");
  EXPECT_EQ(groups[2].prev_op, "model.layers.0.mlp.up_proj");
  EXPECT_EQ(groups[2].linears, (Names{"model.layers.0.mlp.down_proj"}));
  EXPECT_EQ(groups[2].inspect, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(groups[3].prev_op, "model.layers.1.input_layernorm");
}

TEST(ScalingGroups, LlamaWithoutGroupedQueryAttentionScalesValueIntoOutput) {
  Value config = testing::llama_family_config("llama", 1);
  config.set("num_key_value_heads", 4);
  config.set("head_dim", 8);
  const auto groups = groups_of(config);
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[1].prev_op, "model.layers.0.self_attn.v_proj");
  EXPECT_EQ(groups[1].linears, (Names{"model.layers.0.self_attn.o_proj"}));
  EXPECT_EQ(groups[1].inspect, "model.layers.0.self_attn.o_proj");
}

TEST(ScalingGroups, OptDeclaresAutoAwqsGroupsAndGpt2None) {
  const auto groups = groups_of(testing::opt_config(1));
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].prev_op, "model.decoder.layers.0.self_attn_layer_norm");
  EXPECT_EQ(groups[1].prev_op, "model.decoder.layers.0.self_attn.v_proj");
  EXPECT_EQ(groups[2].prev_op, "model.decoder.layers.0.final_layer_norm");
  EXPECT_EQ(groups[3].prev_op, "model.decoder.layers.0.fc1");
  EXPECT_EQ(groups[3].inspect, "model.decoder.layers.0.fc2");
  EXPECT_TRUE(groups_of(testing::gpt2_config()).empty());
  // Post-norm OPT blocks have no norm in front of their linears to fold into.
  EXPECT_TRUE(groups_of(testing::opt_config(1, 24, false)).empty());
}

// x * rsqrt(mean(x^2) + eps) * w, as transformers' LlamaRMSNorm.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + 1e-5) * w;
}

TEST(RunBlockModule, LlamaBlockIsItsAttentionAndMlpPlusResiduals) {
  auto model = testing::random_model(testing::llama_family_config("llama", 2), 3, 0.1);
  auto tensors = testing::model_tensors(*model);
  at::manual_seed(0);
  const at::Tensor h = at::randn({2, 7, 32});
  const std::string b = "model.layers.1";
  const at::Tensor h1 =
      h + model->run_block_module(1, b + ".self_attn",
                                  rms_norm(h, tensors[b + ".input_layernorm.weight"]));
  const at::Tensor want =
      h1 + model->run_block_module(1, b + ".mlp",
                                   rms_norm(h1, tensors[b + ".post_attention_layernorm.weight"]));
  EXPECT_TRUE(at::allclose(model->run_block(1, h), want, 1e-5, 1e-5));
  const at::Tensor x = at::randn({2, 7, 40});
  EXPECT_TRUE(at::equal(model->run_block_module(1, b + ".mlp.down_proj", x),
                        model->find_linear(b + ".mlp.down_proj")->forward(x)));
}

TEST(RunBlockModule, OptAttentionRunsWithTheCausalMask) {
  auto model = testing::random_model(testing::opt_config(1), 3, 0.1);
  auto tensors = testing::model_tensors(*model);
  at::manual_seed(0);
  const at::Tensor h = at::randn({1, 6, 32});
  const std::string b = "model.decoder.layers.0";
  const at::Tensor normed = at::layer_norm(h, {32}, tensors[b + ".self_attn_layer_norm.weight"],
                                           tensors[b + ".self_attn_layer_norm.bias"], 1e-5);
  const at::Tensor full = model->run_block_module(0, b + ".self_attn", normed);
  // Causal: the first 3 positions do not see the last 3.
  const at::Tensor prefix = model->run_block_module(0, b + ".self_attn", normed.slice(1, 0, 3));
  EXPECT_TRUE(at::allclose(full.slice(1, 0, 3), prefix, 1e-5, 1e-6));
}

TEST(RunBlockModule, ModulesOutsideTheBlockOrNotRunnableAreErrors) {
  auto model = testing::random_model(testing::llama_family_config("llama", 2));
  const at::Tensor x = at::randn({1, 3, 32});
  auto message = [&](int64_t block, const std::string& name) {
    try {
      model->run_block_module(block, name, x);
    } catch (const UnsupportedError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(0, "model.layers.1.self_attn.q_proj").find("model.layers.1.self_attn.q_proj"),
            std::string::npos);
  EXPECT_NE(message(0, "model.layers.0.input_layernorm").find("run on its own"), std::string::npos)
      << message(0, "model.layers.0.input_layernorm");
}

// Folding positive scales into every declared group leaves every architecture's logits as they
// were: the property AWQ's search depends on.
TEST(DivideOutputChannels, FoldingScalesKeepsTheModelsFunction) {
  for (const auto& [name, config] : testing::every_architecture()) {
    auto model = testing::random_model(config, 5, 0.1);
    const auto groups = model->describe().scaling_groups;
    if (groups.empty()) continue;
    const at::Tensor ids = testing::random_ids(config.at("vocab_size").as_int(), 2, 9, 1);
    const at::Tensor before = model->forward(ids);
    at::manual_seed(7);
    for (const ScalingGroup& g : groups) {
      const int64_t in = model->find_linear(g.linears[0])->in_features();
      const at::Tensor s = at::rand({in}) * 3 + 0.25;
      model->divide_output_channels(g.prev_op, s);
      for (const auto& l : g.linears) {
        auto& kernel = model->find_linear(l)->kernel();
        kernel.load_tensor("weight", kernel.dequantize(DType::F32) * s.view({1, -1}));
      }
    }
    const at::Tensor after = model->forward(ids);
    EXPECT_TRUE(at::allclose(after, before, 1e-4, 1e-4))
        << name << ": max diff " << (after - before).abs().max().item<float>();
  }
}

TEST(DivideOutputChannels, UnknownOrWeightlessOpsAreErrors) {
  auto model = testing::random_model(testing::llama_family_config("llama", 1));
  const at::Tensor s = at::ones({32});
  EXPECT_THROW(model->divide_output_channels("model.layers.0.nothing", s), UnsupportedError);
  EXPECT_THROW(model->divide_output_channels("model.layers.0.mlp", s), UnsupportedError);
  // More scales than the op has output channels.
  EXPECT_THROW(model->divide_output_channels("model.layers.0.self_attn.k_proj", at::ones({64})),
               UnsupportedError);
}

}  // namespace
}  // namespace qplug
