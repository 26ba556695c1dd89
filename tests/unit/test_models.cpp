// The reference architectures built from config.json values: their module trees and descriptions
// against transformers' (hand-built in model_descriptions.hpp), their logits against an
// independent float64 re-implementation of transformers' forward passes (rope scaling, sliding
// windows, biases, Conv1D, OPT's projections and post-norm included), causality, and config
// errors.
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model_descriptions.hpp"
#include "model_test_util.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

using testing::every_architecture;
using testing::gpt2_config;
using testing::llama_family_config;
using testing::logits_of;
using testing::mistral_config;
using testing::model_tensors;
using testing::opt_config;
using testing::random_ids;
using testing::random_model;
using Weights = std::map<std::string, at::Tensor>;

// Large enough that attention patterns and positions change the logits visibly.
constexpr double kWideStd = 0.2;

// ---- a float64 reference of transformers' forward passes ---------------------------------------

class Reference {
 public:
  explicit Reference(const Weights& weights) : weights_(weights) {}

  at::Tensor w(const std::string& name) const { return weights_.at(name).to(at::kDouble); }
  // The bias, or an undefined tensor when the layer has none.
  at::Tensor b(const std::string& name) const {
    auto it = weights_.find(name);
    return it == weights_.end() ? at::Tensor() : it->second.to(at::kDouble);
  }
  at::Tensor linear(const at::Tensor& x, const std::string& layer) const {
    return at::linear(x, w(layer + ".weight"), b(layer + ".bias"));
  }
  at::Tensor layer_norm(const at::Tensor& x, const std::string& module) const {
    return at::layer_norm(x, {x.size(-1)}, w(module + ".weight"), b(module + ".bias"), 1e-5);
  }
  at::Tensor rms_norm(const at::Tensor& x, const std::string& module, double eps) const {
    return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * w(module + ".weight");
  }
  at::Tensor embed(const std::string& table, const at::Tensor& ids) const {
    return w(table).index_select(0, ids.flatten()).view({ids.size(0), ids.size(1), -1});
  }

 private:
  const Weights& weights_;
};

// [T, T]: 0 where query i may see key j (j <= i, and i - j < window when window > 0), -inf
// elsewhere.
at::Tensor reference_mask(int64_t t, int64_t window) {
  at::Tensor mask = at::zeros({t, t}, at::TensorOptions().dtype(at::kDouble));
  auto m = mask.accessor<double, 2>();
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < t; ++j)
      if (j > i || (window > 0 && i - j >= window)) m[i][j] = -INFINITY;
  return mask;
}

// softmax(q k^T * scale + mask) v; q [B, H, T, D], k/v [B, Hkv, T, D], query head h reading kv
// head h / (H / Hkv) (transformers' repeat_kv).
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               double scale, int64_t window) {
  const int64_t heads = q.size(1), groups = heads / k.size(1);
  std::vector<at::Tensor> outs;
  for (int64_t h = 0; h < heads; ++h) {
    at::Tensor qh = q.select(1, h), kh = k.select(1, h / groups), vh = v.select(1, h / groups);
    at::Tensor scores = qh.matmul(kh.transpose(-1, -2)) * scale + reference_mask(q.size(2), window);
    outs.push_back(at::softmax(scores, -1).matmul(vh));
  }
  return at::stack(outs, 1);
}

// transformers' _compute_default_rope_parameters, then the llama3 or linear rope_scaling rule,
// computed element by element in double.
std::vector<double> reference_inv_freq(const Value& config) {
  const int64_t dim = config.at("head_dim").as_int();
  const double theta = config.at("rope_theta").as_double();
  std::vector<double> inv;
  for (int64_t i = 0; i < dim; i += 2)
    inv.push_back(1.0 / std::pow(theta, static_cast<double>(i) / static_cast<double>(dim)));
  const Value* scaling = config.find("rope_scaling");
  if (scaling == nullptr || !scaling->is_map()) return inv;
  // "type" is the spelling of transformers before 4.43.
  const Value* type_value = scaling->find("rope_type");
  if (type_value == nullptr) type_value = scaling->find("type");
  const std::string type = type_value->as_string();
  const double factor = scaling->at("factor").as_double();
  if (type == "linear") {
    for (double& f : inv)
      f /= factor;
    return inv;
  }
  EXPECT_EQ(type, "llama3");
  const double low = scaling->at("low_freq_factor").as_double();
  const double high = scaling->at("high_freq_factor").as_double();
  const double old_context = scaling->at("original_max_position_embeddings").as_double();
  for (double& f : inv) {
    const double wavelen = 2 * M_PI / f;
    if (wavelen < old_context / high) continue;  // high frequency: unchanged
    if (wavelen > old_context / low) {           // low frequency: scaled
      f /= factor;
      continue;
    }
    const double smooth = (old_context / wavelen - low) / (high - low);
    f = (1 - smooth) * f / factor + smooth * f;
  }
  return inv;
}

// LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM.
at::Tensor reference_llama(const Weights& weights, const Value& config, const at::Tensor& ids,
                           const std::vector<double>& inv_freq) {
  const Reference r(weights);
  const int64_t bsz = ids.size(0), t = ids.size(1);
  const int64_t heads = config.at("num_attention_heads").as_int();
  const int64_t kv_heads = config.at("num_key_value_heads").as_int();
  const int64_t dim = config.at("head_dim").as_int();
  const double eps = config.at("rms_norm_eps").as_double();
  const bool mistral = config.at("model_type").as_string() == "mistral";
  const int64_t window = mistral ? config.at("sliding_window").as_int() : 0;

  at::Tensor angles = at::outer(at::arange(t, at::TensorOptions().dtype(at::kDouble)),
                                at::tensor(inv_freq, at::TensorOptions().dtype(at::kDouble)));
  const at::Tensor cos = at::cat({angles.cos(), angles.cos()}, -1);
  const at::Tensor sin = at::cat({angles.sin(), angles.sin()}, -1);
  auto rotate = [&](const at::Tensor& x) {
    at::Tensor x1 = x.narrow(-1, 0, dim / 2), x2 = x.narrow(-1, dim / 2, dim / 2);
    return x * cos + at::cat({-x2, x1}, -1) * sin;
  };
  auto split = [&](const at::Tensor& x, int64_t n) {
    return x.view({bsz, t, n, dim}).transpose(1, 2);
  };

  at::Tensor h = r.embed("model.embed_tokens.weight", ids);
  for (int64_t l = 0; l < config.at("num_hidden_layers").as_int(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    at::Tensor x = r.rms_norm(h, p + "input_layernorm", eps);
    at::Tensor q = rotate(split(r.linear(x, p + "self_attn.q_proj"), heads));
    at::Tensor k = rotate(split(r.linear(x, p + "self_attn.k_proj"), kv_heads));
    at::Tensor v = split(r.linear(x, p + "self_attn.v_proj"), kv_heads);
    at::Tensor a = reference_attention(q, k, v, 1.0 / std::sqrt(double(dim)), window);
    h = h + r.linear(a.transpose(1, 2).reshape({bsz, t, heads * dim}), p + "self_attn.o_proj");
    x = r.rms_norm(h, p + "post_attention_layernorm", eps);
    h = h + r.linear(at::silu(r.linear(x, p + "mlp.gate_proj")) * r.linear(x, p + "mlp.up_proj"),
                     p + "mlp.down_proj");
  }
  return r.linear(r.rms_norm(h, "model.norm", eps), "lm_head");
}

// GPT2LMHeadModel; the head is read from transformer.wte, so a head that is not tied fails.
at::Tensor reference_gpt2(const Weights& weights, const Value& config, const at::Tensor& ids) {
  const Reference r(weights);
  const int64_t bsz = ids.size(0), t = ids.size(1);
  const int64_t hidden = config.at("n_embd").as_int(), heads = config.at("n_head").as_int();
  const int64_t dim = hidden / heads;
  auto split = [&](const at::Tensor& x) { return x.view({bsz, t, heads, dim}).transpose(1, 2); };
  auto gelu_new = [](const at::Tensor& x) {
    return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
  };
  at::Tensor h = r.embed("transformer.wte.weight", ids) +
                 r.w("transformer.wpe.weight").narrow(0, 0, t).unsqueeze(0);
  for (int64_t l = 0; l < config.at("n_layer").as_int(); ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    auto qkv = r.linear(r.layer_norm(h, p + "ln_1"), p + "attn.c_attn").split(hidden, -1);
    at::Tensor a = reference_attention(split(qkv[0]), split(qkv[1]), split(qkv[2]),
                                       1.0 / std::sqrt(double(dim)), 0);
    h = h + r.linear(a.transpose(1, 2).reshape({bsz, t, hidden}), p + "attn.c_proj");
    h = h +
        r.linear(gelu_new(r.linear(r.layer_norm(h, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj");
  }
  return at::linear(r.layer_norm(h, "transformer.ln_f"), r.w("transformer.wte.weight"));
}

// OPTForCausalLM: positions offset by 2, queries scaled before the product, pre- or post-norm,
// optional project_in / project_out; the head is read from embed_tokens (tied).
at::Tensor reference_opt(const Weights& weights, const Value& config, const at::Tensor& ids) {
  const Reference r(weights);
  const int64_t bsz = ids.size(0), t = ids.size(1);
  const int64_t hidden = config.at("hidden_size").as_int();
  const int64_t heads = config.at("num_attention_heads").as_int(), dim = hidden / heads;
  const bool norm_before = config.at("do_layer_norm_before").as_bool();
  const bool projected = config.at("word_embed_proj_dim").as_int() != hidden;
  auto split = [&](const at::Tensor& x) { return x.view({bsz, t, heads, dim}).transpose(1, 2); };
  auto attention = [&](const at::Tensor& x, const std::string& p) {
    at::Tensor q = r.linear(x, p + "self_attn.q_proj") / std::sqrt(double(dim));
    at::Tensor a = reference_attention(split(q), split(r.linear(x, p + "self_attn.k_proj")),
                                       split(r.linear(x, p + "self_attn.v_proj")), 1.0, 0);
    return r.linear(a.transpose(1, 2).reshape({bsz, t, hidden}), p + "self_attn.out_proj");
  };
  auto mlp = [&](const at::Tensor& x, const std::string& p) {
    return r.linear(at::relu(r.linear(x, p + "fc1")), p + "fc2");
  };

  at::Tensor h = r.embed("model.decoder.embed_tokens.weight", ids);
  if (projected) h = r.linear(h, "model.decoder.project_in");
  h = h + r.w("model.decoder.embed_positions.weight").narrow(0, 2, t).unsqueeze(0);
  for (int64_t l = 0; l < config.at("num_hidden_layers").as_int(); ++l) {
    const std::string p = "model.decoder.layers." + std::to_string(l) + ".";
    if (norm_before) {
      h = h + attention(r.layer_norm(h, p + "self_attn_layer_norm"), p);
      h = h + mlp(r.layer_norm(h, p + "final_layer_norm"), p);
    } else {
      h = r.layer_norm(h + attention(h, p), p + "self_attn_layer_norm");
      h = r.layer_norm(h + mlp(h, p), p + "final_layer_norm");
    }
  }
  if (norm_before) h = r.layer_norm(h, "model.decoder.final_layer_norm");
  if (projected) h = r.linear(h, "model.decoder.project_out");
  return at::linear(h, r.w("model.decoder.embed_tokens.weight"));
}

at::Tensor reference_logits(Model& model, const Value& config, const at::Tensor& ids) {
  const Weights weights = model_tensors(model);
  const std::string type = config.at("model_type").as_string();
  if (type == "gpt2") return reference_gpt2(weights, config, ids);
  if (type == "opt") return reference_opt(weights, config, ids);
  return reference_llama(weights, config, ids, reference_inv_freq(config));
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// ---- logits against the reference --------------------------------------------------------------

TEST(ModelForward, EveryArchitectureMatchesTheReference) {
  for (const auto& [name, config] : every_architecture()) {
    SCOPED_TRACE(name);
    auto model = random_model(config, 7, kWideStd);
    const at::Tensor ids = random_ids(48, 2, 20, 3);
    const at::Tensor got = logits_of(*model, ids);
    ASSERT_EQ(got.sizes().vec(), (std::vector<int64_t>{2, 20, 48}));
    EXPECT_EQ(got.scalar_type(), at::kFloat);
    const at::Tensor want = reference_logits(*model, config, ids);
    // float32 against float64: a wrong mask, rope or bias moves logits by far more (the
    // dependence tests below show how much positions matter).
    EXPECT_LT(max_abs_diff(got, want), 5e-5) << "logits scale " << want.abs().max().item<double>();
  }
}

// Rope scaling changes the logits (so the comparison above could tell them apart), and the model
// follows each rule: llama3's three frequency bands and linear's uniform division.
TEST(ModelForward, RopeScalingFollowsTransformers) {
  Value base = llama_family_config("llama");
  Value linear = base;
  Value linear_scaling = Value::map();
  linear_scaling.set("type", "linear");  // the old spelling of rope_type
  linear_scaling.set("factor", 4.0);
  linear.set("rope_scaling", linear_scaling);
  Value llama3 = every_architecture()[2].second;
  ASSERT_EQ(llama3.at("rope_scaling").at("rope_type").as_string(), "llama3");

  // Every llama3 band is present for head_dim 16 and an old context of 64: wavelengths from 2 pi
  // to ~4000 straddle 64 / 4 and 64 / 1.
  const std::vector<double> plain = reference_inv_freq(base);
  const std::vector<double> scaled = reference_inv_freq(llama3);
  int unchanged = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    if (scaled[i] == plain[i])
      ++unchanged;
    else if (std::abs(scaled[i] - plain[i] / 8) < 1e-15)
      ++divided;
    else
      ++smoothed;
  }
  EXPECT_GT(unchanged, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);

  const at::Tensor ids = random_ids(48, 1, 40, 5);
  auto plain_model = random_model(base, 11, kWideStd);
  const at::Tensor plain_logits = logits_of(*plain_model, ids);
  for (const Value* config : {&linear, &llama3}) {
    auto model = random_model(*config, 11, kWideStd);  // the same weights as plain_model
    const at::Tensor got = logits_of(*model, ids);
    EXPECT_GT(max_abs_diff(got, plain_logits), 1e-2) << "rope_scaling had no effect";
    EXPECT_LT(max_abs_diff(got, reference_logits(*model, *config, ids)), 5e-5);
    // Against the unscaled reference the model must be far off: it really applied the scaling.
    const at::Tensor unscaled = reference_llama(model_tensors(*model), *config, ids, plain);
    EXPECT_GT(max_abs_diff(got, unscaled), 1e-2);
  }
}

TEST(ModelForward, UnsupportedRopeScalingIsAConfigError) {
  Value config = llama_family_config("llama");
  Value scaling = Value::map();
  scaling.set("rope_type", "yarn-ish");
  scaling.set("factor", 2.0);
  config.set("rope_scaling", scaling);
  try {
    build_model(config);
    FAIL() << "no error for an unknown rope_type";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "rope_type");
    EXPECT_TRUE(testing::contains(e.what(), "yarn-ish")) << e.what();
    EXPECT_TRUE(testing::contains(e.what(), "llama3")) << e.what();
  }
}

// ---- causality and the sliding window ----------------------------------------------------------

// Logits at positions <= t must not move when tokens after t change, and later ones must.
TEST(ModelForward, EveryArchitectureIsCausal) {
  for (const auto& [name, config] : every_architecture()) {
    SCOPED_TRACE(name);
    auto model = random_model(config, 3, kWideStd);
    const at::Tensor ids = random_ids(48, 1, 16, 9);
    at::Tensor changed = ids.clone();
    const int64_t t = 7;
    changed.narrow(1, t + 1, 16 - t - 1).copy_((ids.narrow(1, t + 1, 16 - t - 1) + 5) % 48);
    const at::Tensor a = logits_of(*model, ids), b = logits_of(*model, changed);
    EXPECT_LT(max_abs_diff(a.narrow(1, 0, t + 1), b.narrow(1, 0, t + 1)), 1e-6);
    EXPECT_GT(max_abs_diff(a.narrow(1, t + 1, 16 - t - 1), b.narrow(1, t + 1, 16 - t - 1)), 1e-3);
  }
}

// Max abs change of the logits at `position` when the token at `changed` is replaced.
double influence(Model& model, const at::Tensor& ids, int64_t changed, int64_t position) {
  at::Tensor other = ids.clone();
  other[0][changed] = (ids[0][changed].item<int64_t>() + 17) % 48;
  const at::Tensor a = logits_of(model, ids), b = logits_of(model, other);
  return max_abs_diff(a[0][position], b[0][position]);
}

TEST(ModelForward, MistralSlidingWindowHidesOlderTokens) {
  // One layer: position t sees exactly t-3..t with a window of 4.
  auto one = random_model(mistral_config(4, /*layers=*/1), 5, kWideStd);
  const at::Tensor ids = random_ids(48, 1, 14, 2);
  const int64_t t = 11;
  EXPECT_LT(influence(*one, ids, t - 4, t), 1e-6);
  EXPECT_LT(influence(*one, ids, 0, t), 1e-6);
  EXPECT_GT(influence(*one, ids, t - 3, t), 1e-3);
  EXPECT_GT(influence(*one, ids, t - 1, t), 1e-3);

  // Two layers: each adds three positions of reach, so t-6 is seen and t-7 is not.
  auto two = random_model(mistral_config(4, /*layers=*/2), 5, kWideStd);
  EXPECT_GT(influence(*two, ids, t - 6, t), 1e-4);
  EXPECT_LT(influence(*two, ids, t - 7, t), 1e-6);

  // The same weights as llama (no window) see everything.
  Value llama = mistral_config(4, 1);
  llama.set("model_type", "llama");
  auto full = random_model(llama, 5, kWideStd);
  EXPECT_GT(influence(*full, ids, 0, t), 1e-3);
}

// qwen2's window applies only with use_sliding_window, from max_window_layers on.
TEST(ModelForward, Qwen2SlidingWindowOnlyWhenEnabled) {
  Value config = llama_family_config("qwen2", 1);
  config.set("sliding_window", 4);
  const at::Tensor ids = random_ids(48, 1, 12, 4);
  auto off = random_model(config, 6, kWideStd);
  EXPECT_GT(influence(*off, ids, 0, 10), 1e-3);
  config.set("use_sliding_window", true);
  config.set("max_window_layers", 0);
  auto on = random_model(config, 6, kWideStd);
  EXPECT_LT(influence(*on, ids, 0, 10), 1e-6);
  EXPECT_GT(influence(*on, ids, 8, 10), 1e-3);
}

// ---- module trees and descriptions -------------------------------------------------------------

std::unique_ptr<Model> skeleton(const Value& config) {
  ModelBuildOptions options;
  options.device = "meta";
  return build_model(config, options);
}

// Our description against transformers' (hand-built): the same parameter order, tied weights,
// head, blocks and fused groups, and every module we build exists there with the same type and
// tensors. transformers has a few tensor-less modules we do not build (dropout, activations,
// rotary embedding); they are listed so that a new difference shows up.
void expect_matches_transformers(const ModelDescription& got, const ModelDescription& want,
                                 const std::set<std::string>& allowed_missing_types) {
  EXPECT_EQ(got.model_type, want.model_type);
  EXPECT_EQ(got.parameter_order, want.parameter_order);
  ASSERT_EQ(got.tied_weights.size(), want.tied_weights.size());
  for (size_t i = 0; i < got.tied_weights.size(); ++i) {
    EXPECT_EQ(got.tied_weights[i].target, want.tied_weights[i].target);
    EXPECT_EQ(got.tied_weights[i].source, want.tied_weights[i].source);
  }
  EXPECT_EQ(got.output_embedding, want.output_embedding);
  EXPECT_EQ(got.block_container, want.block_container);
  EXPECT_EQ(got.num_blocks, want.num_blocks);
  ASSERT_EQ(got.fused_groups.size(), want.fused_groups.size());
  for (size_t i = 0; i < got.fused_groups.size(); ++i) {
    EXPECT_EQ(got.fused_groups[i].name, want.fused_groups[i].name);
    EXPECT_EQ(got.fused_groups[i].members, want.fused_groups[i].members);
  }
  size_t cursor = 0;  // our modules appear in transformers' definition order
  for (const auto& m : got.modules) {
    const ModuleInfo* theirs = want.find(m.name);
    if (theirs == nullptr) {
      ADD_FAILURE() << "module " << m.name << " (" << m.type << ") is not in transformers' tree";
      continue;
    }
    SCOPED_TRACE(m.name);
    EXPECT_EQ(m.type, theirs->type);
    EXPECT_EQ(m.is_linear, theirs->is_linear);
    EXPECT_EQ(m.in_features, theirs->in_features);
    EXPECT_EQ(m.out_features, theirs->out_features);
    EXPECT_EQ(m.has_bias, theirs->has_bias);
    ASSERT_EQ(m.params.size(), theirs->params.size());
    for (size_t i = 0; i < m.params.size(); ++i) {
      EXPECT_EQ(m.params[i].name, theirs->params[i].name);
      EXPECT_EQ(m.params[i].shape, theirs->params[i].shape) << m.params[i].name;
      EXPECT_EQ(m.params[i].dtype, theirs->params[i].dtype);
    }
    const size_t index = static_cast<size_t>(theirs - want.modules.data());
    EXPECT_GE(index, cursor) << "out of transformers' order";
    cursor = index;
  }
  for (const auto& m : want.modules) {
    if (got.find(m.name) != nullptr) continue;
    EXPECT_TRUE(m.params.empty()) << m.name << " holds tensors but was not built";
    EXPECT_TRUE(allowed_missing_types.count(m.type)) << m.name << " (" << m.type << ") missing";
  }
}

TEST(ModelDescribe, TiedLlamaMatchesTransformers) {
  // stories260K's own config.json: hidden 64, MLP 172, 8/4 heads of 8, 5 layers, tied.
  const Value config = read_model_config((testing::shared_dir() / "data/stories260K").string());
  const ModelDescription d = skeleton(config)->describe();
  expect_matches_transformers(d, testing::tied_llama(5), {"LlamaRotaryEmbedding", "SiLU"});
  // named_parameters() leaves the tied head out: the last parameter is the final norm's.
  ASSERT_FALSE(d.parameter_order.empty());
  EXPECT_EQ(d.parameter_order.back(), "model.norm.weight");
  EXPECT_EQ(std::count(d.parameter_order.begin(), d.parameter_order.end(), "lm_head.weight"), 0);
  EXPECT_EQ(d.base_model_prefix, "model");
  // A tied head is still a module with its (shared) weight.
  ASSERT_NE(d.find("lm_head"), nullptr);
  EXPECT_EQ(d.find("lm_head")->params.size(), 1u);
}

TEST(ModelDescribe, UntiedLlamaMatchesTransformers) {
  const Value config = read_model_config((testing::shared_dir() / "data/stories3M").string());
  testing::LlamaShape shape;
  shape.hidden = 256;
  shape.intermediate = 768;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 64;
  shape.layers = 4;
  const ModelDescription d = skeleton(config)->describe();
  expect_matches_transformers(d, testing::llama(shape), {"LlamaRotaryEmbedding", "SiLU"});
  EXPECT_EQ(d.parameter_order.back(), "lm_head.weight");
  EXPECT_TRUE(d.tied_weights.empty());
}

TEST(ModelDescribe, Gpt2MatchesTransformers) {
  Value config = gpt2_config(2);
  config.set("vocab_size", 512);
  config.set("n_positions", 128);
  config.set("n_embd", 64);
  auto model = skeleton(config);
  const ModelDescription d = model->describe();
  expect_matches_transformers(d, testing::gpt2(), {"Dropout", "NewGELUActivation"});
  EXPECT_EQ(d.find("transformer.h.0.attn.c_attn")->type, "Conv1D");
  EXPECT_EQ(d.base_model_prefix, "transformer");
  EXPECT_EQ(model->block_name(1), "transformer.h.1");
  // GPT-2 has no fused groups to keep together: c_attn is one layer already.
  EXPECT_TRUE(d.fused_groups.empty());
}

// What the checkpoint holds for a Conv1D is [in, out]; the kernel computes with [out, in].
TEST(ModelDescribe, Gpt2Conv1DCheckpointTensorsAreInOut) {
  auto model = skeleton(gpt2_config(1));
  std::map<std::string, ExpectedTensor> expected;
  for (const auto& e : expected_checkpoint_tensors(*model))
    expected[e.name] = e;
  EXPECT_EQ(expected.at("transformer.h.0.attn.c_attn.weight").shape,
            (std::vector<int64_t>{32, 96}));
  EXPECT_EQ(expected.at("transformer.h.0.attn.c_attn.bias").shape, (std::vector<int64_t>{96}));
  EXPECT_EQ(expected.at("transformer.h.0.mlp.c_fc.weight").shape, (std::vector<int64_t>{32, 128}));
  EXPECT_EQ(expected.at("transformer.h.0.mlp.c_proj.weight").shape,
            (std::vector<int64_t>{128, 32}));
  // The head is nn.Linear, [out, in], and optional (tied to wte).
  EXPECT_EQ(expected.at("lm_head.weight").shape, (std::vector<int64_t>{48, 32}));
  EXPECT_TRUE(expected.at("lm_head.weight").optional);
  EXPECT_FALSE(expected.at("transformer.wte.weight").optional);
  auto* c_attn = model->find_linear("transformer.h.0.attn.c_attn");
  ASSERT_NE(c_attn, nullptr);
  EXPECT_EQ(c_attn->layout(), nn::WeightLayout::InOut);
  EXPECT_EQ(c_attn->in_features(), 32);
  EXPECT_EQ(c_attn->out_features(), 96);
}

// `qplug inspect` checks a checkpoint against expected_tensors(describe()); for every
// architecture that must agree with what the loader expects.
TEST(ModelDescribe, DescriptionExpectsWhatTheLoaderExpects) {
  for (const auto& [name, config] : every_architecture()) {
    SCOPED_TRACE(name);
    auto model = skeleton(config);
    std::map<std::string, std::pair<std::vector<int64_t>, bool>> loader, described;
    for (const auto& e : expected_checkpoint_tensors(*model))
      loader[e.name] = {e.shape, e.optional};
    for (const auto& e : expected_tensors(model->describe()))
      described[e.name] = {e.shape, e.optional};
    EXPECT_EQ(described, loader);
  }
}

TEST(ModelDescribe, OptMatchesTransformers) {
  Value config = opt_config(3, 64);
  config.set("vocab_size", 512);
  config.set("max_position_embeddings", 128);
  config.set("hidden_size", 64);
  config.set("ffn_dim", 256);
  auto model = skeleton(config);
  const ModelDescription d = model->describe();
  expect_matches_transformers(d, testing::opt(), {"ReLU"});
  // OPTDecoder registers final_layer_norm before the layers: the last parameter is in a layer.
  EXPECT_EQ(d.parameter_order.back(), "model.decoder.layers.2.final_layer_norm.bias");
  EXPECT_EQ(model->block_name(2), "model.decoder.layers.2");
}

// opt-350m: word_embed_proj_dim 512 != hidden 1024 and post-norm blocks without a final norm.
TEST(ModelDescribe, OptProjectionsAndPostNorm) {
  auto model = skeleton(opt_config(2, /*word_dim=*/24, /*norm_before=*/false));
  const ModelDescription d = model->describe();
  const ModuleInfo* in = d.find("model.decoder.project_in");
  const ModuleInfo* out = d.find("model.decoder.project_out");
  ASSERT_NE(in, nullptr);
  ASSERT_NE(out, nullptr);
  EXPECT_TRUE(in->is_linear);
  EXPECT_EQ(in->in_features, 24);
  EXPECT_EQ(in->out_features, 32);
  EXPECT_FALSE(in->has_bias);
  EXPECT_EQ(out->in_features, 32);
  EXPECT_EQ(out->out_features, 24);
  EXPECT_EQ(d.find("model.decoder.embed_tokens")->params[0].shape, (std::vector<int64_t>{48, 24}));
  EXPECT_EQ(d.find("lm_head")->in_features, 24);
  EXPECT_EQ(d.find("model.decoder.final_layer_norm"), nullptr);
  // transformers registers project_out before project_in, both after the embeddings.
  const std::vector<std::string> head(d.parameter_order.begin(), d.parameter_order.begin() + 4);
  EXPECT_EQ(head, (std::vector<std::string>{
                      "model.decoder.embed_tokens.weight", "model.decoder.embed_positions.weight",
                      "model.decoder.project_out.weight", "model.decoder.project_in.weight"}));
  EXPECT_EQ(d.parameter_order.back(), "model.decoder.layers.1.final_layer_norm.bias");
  ASSERT_EQ(d.tied_weights.size(), 1u);
  EXPECT_EQ(d.tied_weights[0].target, "lm_head.weight");
  EXPECT_EQ(d.tied_weights[0].source, "model.decoder.embed_tokens.weight");
  // learned positions: max_position_embeddings + OPT's offset of 2
  EXPECT_EQ(d.find("model.decoder.embed_positions")->params[0].shape,
            (std::vector<int64_t>{34, 32}));
}

TEST(ModelDescribe, Qwen2BiasOnQkvOnly) {
  auto model = skeleton(llama_family_config("qwen2", 1));
  const ModelDescription d = model->describe();
  for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
    const ModuleInfo* m = d.find(std::string("model.layers.0.self_attn.") + proj);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(m->has_bias) << proj;
    ASSERT_EQ(m->params.size(), 2u);
    EXPECT_EQ(m->params[1].name, "bias");
  }
  EXPECT_EQ(d.find("model.layers.0.self_attn.q_proj")->params[1].shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(d.find("model.layers.0.self_attn.k_proj")->params[1].shape, (std::vector<int64_t>{32}));
  EXPECT_FALSE(d.find("model.layers.0.self_attn.o_proj")->has_bias);
  EXPECT_FALSE(d.find("model.layers.0.mlp.down_proj")->has_bias);
  EXPECT_EQ(d.find("model.layers.0")->type, "Qwen2DecoderLayer");
  EXPECT_EQ(d.find("model.layers.0.self_attn")->type, "Qwen2Attention");
  EXPECT_EQ(d.find("model.norm")->type, "Qwen2RMSNorm");
  EXPECT_EQ(d.find("model")->type, "Qwen2Model");
}

TEST(ModelDescribe, MistralAndLlamaTypeNames) {
  const ModelDescription m = skeleton(mistral_config(4, 1))->describe();
  EXPECT_EQ(m.model_type, "mistral");
  EXPECT_EQ(m.find("model.layers.0")->type, "MistralDecoderLayer");
  EXPECT_EQ(m.find("model.layers.0.mlp")->type, "MistralMLP");
  EXPECT_EQ(m.find("model.layers.0.input_layernorm")->type, "MistralRMSNorm");
  EXPECT_FALSE(m.find("model.layers.0.self_attn.q_proj")->has_bias);
  // llama's attention_bias puts biases on q, k, v and o.
  Value config = llama_family_config("llama", 1);
  config.set("attention_bias", true);
  const ModelDescription l = skeleton(config)->describe();
  for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"})
    EXPECT_TRUE(l.find(std::string("model.layers.0.self_attn.") + proj)->has_bias) << proj;
  EXPECT_FALSE(l.find("model.layers.0.mlp.up_proj")->has_bias);
}

TEST(ModelBuild, TiedHeadSharesTheEmbeddingTensor) {
  auto tied = random_model(llama_family_config("llama", 1, true), 1);
  const auto t = model_tensors(*tied);
  EXPECT_TRUE(t.at("lm_head.weight").is_same(t.at("model.embed_tokens.weight")));
  auto untied = random_model(llama_family_config("llama", 1, false), 1);
  const auto u = model_tensors(*untied);
  EXPECT_FALSE(u.at("lm_head.weight").is_alias_of(u.at("model.embed_tokens.weight")));
  EXPECT_FALSE(at::equal(u.at("lm_head.weight"), u.at("model.embed_tokens.weight")));
}

TEST(ModelBuild, DtypeFromConfigOrOptions) {
  const Value bf16 = testing::with_dtype(llama_family_config("llama", 1), "bfloat16");
  auto model = random_model(bf16, 1);
  EXPECT_EQ(model->dtype(), DType::BF16);
  for (const auto& [name, tensor] : model_tensors(*model))
    EXPECT_EQ(tensor.scalar_type(), at::kBFloat16) << name;
  // Logits always come back in float32.
  EXPECT_EQ(logits_of(*model, random_ids(48, 1, 4, 1)).scalar_type(), at::kFloat);

  ModelBuildOptions options;
  options.device = "meta";
  options.dtype = DType::F16;
  EXPECT_EQ(build_model(bf16, options)->dtype(), DType::F16);
  // An option overrides torch_dtype, even one that would be refused.
  EXPECT_EQ(build_model(testing::with_dtype(bf16, "int8"), options)->dtype(), DType::F16);
  options.dtype = DType::I8;
  EXPECT_THROW(build_model(bf16, options), UnsupportedError);
  try {
    build_model(testing::with_dtype(bf16, "int8"));
    ADD_FAILURE() << "no error for torch_dtype int8";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "torch_dtype");
  }
}

TEST(ModelBuild, InitRandomWeightsIsDeterministicAndTransformersLike) {
  auto a = random_model(opt_config(1), 42), b = random_model(opt_config(1), 42);
  auto c = random_model(opt_config(1), 43);
  const auto ta = model_tensors(*a), tb = model_tensors(*b), tc = model_tensors(*c);
  for (const auto& [name, tensor] : ta)
    EXPECT_TRUE(at::equal(tensor, tb.at(name))) << name;
  EXPECT_FALSE(at::equal(ta.at("model.decoder.layers.0.fc1.weight"),
                         tc.at("model.decoder.layers.0.fc1.weight")));
  EXPECT_TRUE(at::equal(ta.at("model.decoder.layers.0.fc1.bias"),
                        at::zeros_like(ta.at("model.decoder.layers.0.fc1.bias"))));
  EXPECT_TRUE(at::equal(ta.at("model.decoder.final_layer_norm.weight"),
                        at::ones_like(ta.at("model.decoder.final_layer_norm.weight"))));
  const double std = ta.at("model.decoder.layers.0.fc1.weight").std().item<double>();
  EXPECT_NEAR(std, 0.02, 0.002);
  // A skeleton has nothing to fill.
  EXPECT_THROW(init_random_weights(*skeleton(opt_config(1)), 1), UnsupportedError);
}

// ---- config errors -----------------------------------------------------------------------------

TEST(ModelBuild, MissingConfigKeyNamesTheKey) {
  const std::vector<std::pair<Value, std::string>> cases = {
      {llama_family_config("llama"), "hidden_size"},
      {llama_family_config("llama"), "num_hidden_layers"},
      {mistral_config(4), "vocab_size"},
      {llama_family_config("qwen2"), "intermediate_size"},
      {gpt2_config(), "n_embd"},
      {gpt2_config(), "n_positions"},
      {opt_config(), "ffn_dim"},
      {opt_config(), "max_position_embeddings"},
      {llama_family_config("llama"), "model_type"},
  };
  for (auto [config, key] : cases) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(config.erase(key));
    try {
      build_model(config);
      ADD_FAILURE() << "no error without " << key;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), key);
      EXPECT_TRUE(testing::contains(e.what(), "'" + key + "'")) << e.what();
    }
  }
}

TEST(ModelBuild, InvalidConfigValuesNameTheKey) {
  auto expect_key = [](Value config, const std::string& key) {
    SCOPED_TRACE(key);
    try {
      build_model(config);
      ADD_FAILURE() << "no error for " << key;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), key) << e.what();
    }
  };
  Value c = llama_family_config("llama");
  c.set("num_key_value_heads", 3);
  expect_key(c, "num_key_value_heads");
  c = llama_family_config("llama");
  c.set("hidden_act", "gelu");
  expect_key(c, "hidden_act");
  c = llama_family_config("llama");
  c.set("hidden_size", "32");  // a string where a number belongs
  expect_key(c, "hidden_size");
  c = gpt2_config();
  c.set("n_head", 5);
  expect_key(c, "n_head");
  c = opt_config();
  c.set("num_hidden_layers", 0);
  expect_key(c, "num_hidden_layers");
}

TEST(ModelBuild, UnknownModelTypeListsTheSupportedOnes) {
  EXPECT_EQ(supported_model_types(),
            (std::vector<std::string>{"gpt2", "llama", "mistral", "opt", "qwen2"}));
  Value config = llama_family_config("llama");
  config.set("model_type", "bert");
  try {
    build_model(config);
    FAIL() << "no error for model_type bert";
  } catch (const UnsupportedError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(testing::contains(what, "'bert'")) << what;
    for (const auto& type : supported_model_types())
      EXPECT_TRUE(testing::contains(what, type)) << what;
  }
}

// Every architecture runs in float16 and bfloat16 on the CPU too (LibTorch 1.13 lacks some float16
// CPU kernels; qplug computes those steps in float32) and agrees with its float32 twin.
TEST(Models, HalfPrecisionForwardMatchesFloat32) {
  for (const auto& [name, config] : testing::every_architecture()) {
    auto reference = testing::random_model(config, 3, 0.05);
    const at::Tensor ids = testing::random_ids(config.at("vocab_size").as_int(), 1, 12, 4);
    const at::Tensor want = reference->forward(ids);
    for (const char* dtype : {"float16", "bfloat16"}) {
      auto model = testing::random_model(testing::with_dtype(config, dtype), 3, 0.05);
      ASSERT_EQ(torch_name(model->dtype()), std::string(dtype));
      const at::Tensor got = model->forward(ids);
      ASSERT_TRUE(at::isfinite(got).all().item<bool>()) << name << " " << dtype;
      const double err = ((got - want).norm() / want.norm()).item<double>();
      EXPECT_LT(err, std::string(dtype) == "float16" ? 0.01 : 0.05) << name << " " << dtype;
    }
  }
}

}  // namespace
}  // namespace qplug
