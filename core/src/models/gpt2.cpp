// GPT-2 as transformers defines it (GPT2LMHeadModel): learned positions, pre-norm blocks with
// LayerNorm, fused c_attn, and Conv1D layers whose checkpoint weights are stored [in, out].
#include <cmath>

#include <torch/nn/modules/container/modulelist.h>

#include "models/activations.hpp"
#include "models/architectures.hpp"
#include "models/hf_config_reader.hpp"
#include "models/layers.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {
namespace models {

namespace {

struct Gpt2Dims {
  int64_t vocab = 0, positions = 0, hidden = 0, inner = 0, layers = 0, heads = 0;
  double eps = 1e-5;
  Activation act = Activation::GeluNew;
  bool tied = true;
  bool scale_attn = true;  // scale_attn_weights
};

nn::Linear conv1d(int64_t in, int64_t out, DType dtype, const std::string& device) {
  return nn::Linear(in, out, /*bias=*/true, dtype, device, nn::WeightLayout::InOut);
}

class Gpt2AttentionImpl : public torch::nn::Module {
 public:
  Gpt2AttentionImpl(const Gpt2Dims& d, DType dtype, const std::string& device)
      : torch::nn::Module("GPT2Attention"),
        heads_(d.heads),
        hidden_(d.hidden),
        scale_(d.scale_attn ? 1.0 / std::sqrt(static_cast<double>(d.hidden / d.heads)) : 1.0) {
    c_attn = register_module("c_attn", conv1d(d.hidden, 3 * d.hidden, dtype, device));
    c_proj = register_module("c_proj", conv1d(d.hidden, d.hidden, dtype, device));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) {
    const int64_t b = x.size(0), t = x.size(1), head_dim = hidden_ / heads_;
    auto qkv = c_attn(x).split(hidden_, -1);
    auto heads = [&](const at::Tensor& y) {
      return y.view({b, t, heads_, head_dim}).transpose(1, 2);
    };
    at::Tensor out = attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), mask, scale_);
    return c_proj(out.transpose(1, 2).reshape({b, t, hidden_}));
  }
  nn::Linear c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t heads_, hidden_;
  double scale_;
};
TORCH_MODULE(Gpt2Attention);

class Gpt2MLPImpl : public torch::nn::Module {
 public:
  Gpt2MLPImpl(const Gpt2Dims& d, DType dtype, const std::string& device)
      : torch::nn::Module("GPT2MLP"), act_(d.act) {
    c_fc = register_module("c_fc", conv1d(d.hidden, d.inner, dtype, device));
    c_proj = register_module("c_proj", conv1d(d.inner, d.hidden, dtype, device));
  }
  at::Tensor forward(const at::Tensor& x) { return c_proj(activate(act_, c_fc(x))); }
  nn::Linear c_fc{nullptr}, c_proj{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(Gpt2MLP);

class Gpt2BlockImpl : public torch::nn::Module {
 public:
  Gpt2BlockImpl(const Gpt2Dims& d, DType dtype, const std::string& device)
      : torch::nn::Module("GPT2Block") {
    const auto options =
        at::TensorOptions().dtype(to_scalar_type(dtype)).device(c10::Device(device));
    ln_1 = register_module("ln_1", LayerNorm(d.hidden, d.eps, true, options));
    attn = register_module("attn", Gpt2Attention(d, dtype, device));
    ln_2 = register_module("ln_2", LayerNorm(d.hidden, d.eps, true, options));
    mlp = register_module("mlp", Gpt2MLP(d, dtype, device));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) {
    at::Tensor h = x + attn(ln_1(x), mask);
    return h + mlp(ln_2(h));
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2MLP mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

class Gpt2BackboneImpl : public torch::nn::Module {
 public:
  Gpt2BackboneImpl(const Gpt2Dims& d, DType dtype, const std::string& device)
      : torch::nn::Module("GPT2Model") {
    const auto options =
        at::TensorOptions().dtype(to_scalar_type(dtype)).device(c10::Device(device));
    wte = register_module("wte", Embedding(d.vocab, d.hidden, options));
    wpe = register_module("wpe", Embedding(d.positions, d.hidden, options));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < d.layers; ++i)
      h->push_back(Gpt2Block(d, dtype, device));
    ln_f = register_module("ln_f", LayerNorm(d.hidden, d.eps, true, options));
  }
  Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Backbone);

class Gpt2LMHeadImpl : public torch::nn::Module {
 public:
  Gpt2LMHeadImpl(const Gpt2Dims& d, DType dtype, const std::string& device)
      : torch::nn::Module("GPT2LMHeadModel") {
    transformer = register_module("transformer", Gpt2Backbone(d, dtype, device));
    lm_head = register_module("lm_head", nn::Linear(d.hidden, d.vocab, false, dtype, device));
  }
  Gpt2Backbone transformer{nullptr};
  nn::Linear lm_head{nullptr};
};
TORCH_MODULE(Gpt2LMHead);

class Gpt2Model final : public TransformerModel {
 public:
  Gpt2Model(Value hf_config, DType dtype, std::string device, const Gpt2Dims& dims)
      : TransformerModel(std::move(hf_config), dtype, device), dims_(dims) {
    net_ = Gpt2LMHead(dims, dtype, device);
    root_ = net_.ptr();
    tie_weights();
  }

  ArchitectureFacts facts() const override {
    ArchitectureFacts f;
    if (dims_.tied) f.declared_tied.push_back({"lm_head.weight", "transformer.wte.weight"});
    f.output_embedding = "lm_head";
    f.block_container = "transformer.h";
    f.base_model_prefix = "transformer";
    // Causal-mask buffers that old GPT-2 checkpoints saved.
    f.ignore_on_load = {R"((^|\.)h\.[0-9]+\.attn\.(masked_)?bias$)"};
    return f;
  }

  void tie_weights() override {
    if (!dims_.tied || net_->lm_head->is_quantized()) return;
    net_->lm_head->kernel().load_tensor("weight", net_->transformer->wte->weight());
  }

  int64_t num_blocks() const override { return dims_.layers; }

  at::Tensor embed(const at::Tensor& input_ids) override {
    const int64_t t = input_ids.size(1);
    if (t > dims_.positions)
      throw ConfigError("a sequence of " + std::to_string(t) +
                            " tokens is longer than n_positions (" +
                            std::to_string(dims_.positions) + ")",
                        hf_config().location(), "n_positions");
    at::Tensor positions =
        at::arange(t, at::TensorOptions().dtype(at::kLong).device(input_ids.device()));
    return net_->transformer->wte(input_ids) + net_->transformer->wpe(positions).unsqueeze(0);
  }

  at::Tensor run_block(int64_t index, const at::Tensor& hidden) override {
    auto block = net_->transformer->h->ptr<Gpt2BlockImpl>(index);
    return block->forward(hidden,
                          causal_mask(hidden.size(1), 0, hidden.scalar_type(), hidden.device()));
  }

  at::Tensor head(const at::Tensor& hidden) override {
    return net_->lm_head(net_->transformer->ln_f(hidden)).to(at::kFloat);
  }

 private:
  Gpt2Dims dims_;
  Gpt2LMHead net_{nullptr};
};

}  // namespace

std::unique_ptr<TransformerModel> build_gpt2(const Value& hf_config, DType dtype,
                                             const std::string& device) {
  HfConfigReader cfg(hf_config);
  Gpt2Dims d;
  d.vocab = cfg.require_int("vocab_size");
  d.positions = cfg.require_int("n_positions");
  d.hidden = cfg.require_int("n_embd");
  d.layers = cfg.require_int("n_layer");
  d.heads = cfg.require_int("n_head");
  d.inner = cfg.present("n_inner") ? cfg.require_int("n_inner") : 4 * d.hidden;
  d.eps = cfg.get_double("layer_norm_epsilon", 1e-5);
  d.tied = cfg.get_bool("tie_word_embeddings", true);
  d.scale_attn = cfg.get_bool("scale_attn_weights", true);
  const std::string act = cfg.get_string("activation_function", "gelu_new");
  const auto parsed = activation_from_name(act);
  if (!parsed) cfg.fail("activation_function", "'" + act + "' is not supported");
  d.act = *parsed;
  for (const char* key : {"vocab_size", "n_positions", "n_embd", "n_layer", "n_head"})
    if (cfg.require_int(key) <= 0) cfg.fail(key, "must be positive");
  if (d.hidden % d.heads != 0) cfg.fail("n_head", "must divide n_embd");
  if (cfg.get_bool("scale_attn_by_inverse_layer_idx", false) ||
      cfg.get_bool("reorder_and_upcast_attn", false))
    cfg.fail("scale_attn_by_inverse_layer_idx", "this GPT-2 attention variant is not supported");
  return std::make_unique<Gpt2Model>(hf_config, dtype, device, d);
}

}  // namespace models
}  // namespace qplug
