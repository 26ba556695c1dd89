// The Llama family (llama, mistral, qwen2) as transformers defines it: pre-norm decoder blocks
// with RMSNorm, rotary embeddings, grouped-query attention and a SwiGLU MLP.
#include <cmath>

#include <torch/nn/modules/container/modulelist.h>

#include "models/activations.hpp"
#include "models/architectures.hpp"
#include "models/hf_config_reader.hpp"
#include "models/layers.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {
namespace models {

namespace {

// What differs between the three model types.
struct LlamaVariant {
  std::string prefix;  // class-name prefix: "Llama", "Mistral", "Qwen2"
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
};

struct LlamaDims {
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0,
          head_dim = 0;
  double eps = 1e-6;
  bool tied = false;
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const LlamaVariant& v, const LlamaDims& d, DType dtype,
                     const std::string& device)
      : torch::nn::Module(v.prefix + "Attention"),
        heads_(d.heads),
        kv_heads_(d.kv_heads),
        head_dim_(d.head_dim) {
    q_proj = register_module("q_proj",
                             nn::Linear(d.hidden, d.heads * d.head_dim, v.qkv_bias, dtype, device));
    k_proj = register_module(
        "k_proj", nn::Linear(d.hidden, d.kv_heads * d.head_dim, v.qkv_bias, dtype, device));
    v_proj = register_module(
        "v_proj", nn::Linear(d.hidden, d.kv_heads * d.head_dim, v.qkv_bias, dtype, device));
    o_proj = register_module("o_proj",
                             nn::Linear(d.heads * d.head_dim, d.hidden, v.o_bias, dtype, device));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask) {
    const int64_t b = x.size(0), t = x.size(1);
    at::Tensor q = q_proj(x).view({b, t, heads_, head_dim_}).transpose(1, 2);
    at::Tensor k = k_proj(x).view({b, t, kv_heads_, head_dim_}).transpose(1, 2);
    at::Tensor v = v_proj(x).view({b, t, kv_heads_, head_dim_}).transpose(1, 2);
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
    at::Tensor out = attention(q, k, v, mask, 1.0 / std::sqrt(static_cast<double>(head_dim_)));
    return o_proj(out.transpose(1, 2).reshape({b, t, heads_ * head_dim_}));
  }

  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(LlamaAttention);

class LlamaMLPImpl : public torch::nn::Module {
 public:
  LlamaMLPImpl(const LlamaVariant& v, const LlamaDims& d, DType dtype, const std::string& device)
      : torch::nn::Module(v.prefix + "MLP") {
    gate_proj = register_module("gate_proj",
                                nn::Linear(d.hidden, d.intermediate, v.mlp_bias, dtype, device));
    up_proj =
        register_module("up_proj", nn::Linear(d.hidden, d.intermediate, v.mlp_bias, dtype, device));
    down_proj = register_module("down_proj",
                                nn::Linear(d.intermediate, d.hidden, v.mlp_bias, dtype, device));
  }
  at::Tensor forward(const at::Tensor& x) {
    return down_proj(activate(Activation::Silu, gate_proj(x)) * up_proj(x));
  }

  nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  LlamaDecoderLayerImpl(const LlamaVariant& v, const LlamaDims& d, DType dtype,
                        const std::string& device, int64_t window)
      : torch::nn::Module(v.prefix + "DecoderLayer"), window_(window) {
    const auto options =
        at::TensorOptions().dtype(to_scalar_type(dtype)).device(c10::Device(device));
    // Registration order is transformers' (and so is named_parameters()).
    self_attn = register_module("self_attn", LlamaAttention(v, d, dtype, device));
    mlp = register_module("mlp", LlamaMLP(v, d, dtype, device));
    input_layernorm =
        register_module("input_layernorm", RMSNorm(v.prefix + "RMSNorm", d.hidden, d.eps, options));
    post_attention_layernorm = register_module(
        "post_attention_layernorm", RMSNorm(v.prefix + "RMSNorm", d.hidden, d.eps, options));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask) {
    at::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask);
    return h + mlp(post_attention_layernorm(h));
  }
  int64_t window() const { return window_; }

  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};

 private:
  int64_t window_;  // sliding-window size, 0 = full causal attention
};
TORCH_MODULE(LlamaDecoderLayer);

class LlamaBackboneImpl : public torch::nn::Module {
 public:
  LlamaBackboneImpl(const LlamaVariant& v, const LlamaDims& d, DType dtype,
                    const std::string& device, const std::vector<int64_t>& windows)
      : torch::nn::Module(v.prefix + "Model") {
    const auto options =
        at::TensorOptions().dtype(to_scalar_type(dtype)).device(c10::Device(device));
    embed_tokens = register_module("embed_tokens", Embedding(d.vocab, d.hidden, options));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < d.layers; ++i)
      layers->push_back(LlamaDecoderLayer(v, d, dtype, device, windows[i]));
    norm = register_module("norm", RMSNorm(v.prefix + "RMSNorm", d.hidden, d.eps, options));
  }

  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaBackbone);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  LlamaForCausalLMImpl(const LlamaVariant& v, const LlamaDims& d, DType dtype,
                       const std::string& device, const std::vector<int64_t>& windows)
      : torch::nn::Module(v.prefix + "ForCausalLM") {
    model = register_module("model", LlamaBackbone(v, d, dtype, device, windows));
    lm_head = register_module("lm_head", nn::Linear(d.hidden, d.vocab, false, dtype, device));
  }
  LlamaBackbone model{nullptr};
  nn::Linear lm_head{nullptr};
};
TORCH_MODULE(LlamaForCausalLM);

class LlamaModel final : public TransformerModel {
 public:
  LlamaModel(Value hf_config, DType dtype, std::string device, const LlamaVariant& variant,
             const LlamaDims& dims, const std::vector<int64_t>& windows, RotaryEmbedding rope)
      : TransformerModel(std::move(hf_config), dtype, device), dims_(dims), rope_(std::move(rope)) {
    net_ = LlamaForCausalLM(variant, dims, dtype, device, windows);
    root_ = net_.ptr();
    tie_weights();
  }

  ArchitectureFacts facts() const override {
    ArchitectureFacts f;
    if (dims_.tied) f.declared_tied.push_back({"lm_head.weight", "model.embed_tokens.weight"});
    f.output_embedding = "lm_head";
    f.block_container = "model.layers";
    f.fused_in_block = {
        {"self_attn.qkv_proj", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}},
        {"mlp.gate_up_proj", {"mlp.gate_proj", "mlp.up_proj"}}};
    f.scaling_in_block.push_back({"input_layernorm",
                                  {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                  "self_attn"});
    // v_proj's output channels are o_proj's inputs one to one only without grouped-query
    // attention (AutoAWQ's test: the two weights have the same shape).
    if (dims_.kv_heads * dims_.head_dim == dims_.hidden &&
        dims_.heads * dims_.head_dim == dims_.hidden)
      f.scaling_in_block.push_back({"self_attn.v_proj", {"self_attn.o_proj"}, "self_attn.o_proj"});
    f.scaling_in_block.push_back(
        {"post_attention_layernorm", {"mlp.gate_proj", "mlp.up_proj"}, "mlp"});
    f.scaling_in_block.push_back({"mlp.up_proj", {"mlp.down_proj"}, "mlp.down_proj"});
    return f;
  }

  void tie_weights() override {
    if (!dims_.tied || net_->lm_head->is_quantized()) return;
    net_->lm_head->kernel().load_tensor("weight", net_->model->embed_tokens->weight());
  }

  int64_t num_blocks() const override { return dims_.layers; }

  at::Tensor embed(const at::Tensor& input_ids) override {
    return net_->model->embed_tokens(input_ids);
  }

  at::Tensor run_block(int64_t index, const at::Tensor& hidden) override {
    auto layer = net_->model->layers->ptr<LlamaDecoderLayerImpl>(index);
    const int64_t t = hidden.size(1);
    auto [cos, sin] = rope_.cos_sin(t, hidden.scalar_type(), hidden.device());
    return layer->forward(hidden, cos, sin,
                          causal_mask(t, layer->window(), hidden.scalar_type(), hidden.device()));
  }

  at::Tensor head(const at::Tensor& hidden) override {
    return net_->lm_head(net_->model->norm(hidden)).to(at::kFloat);
  }

  at::Tensor run_block_module(int64_t index, const std::string& module,
                              const at::Tensor& input) override {
    auto layer = net_->model->layers->ptr<LlamaDecoderLayerImpl>(index);
    const std::string block = block_name(index);
    if (module == block + ".mlp") return layer->mlp->forward(input);
    if (module == block + ".self_attn") {
      const int64_t t = input.size(1);
      auto [cos, sin] = rope_.cos_sin(t, input.scalar_type(), input.device());
      return layer->self_attn->forward(
          input, cos, sin, causal_mask(t, layer->window(), input.scalar_type(), input.device()));
    }
    return TransformerModel::run_block_module(index, module, input);
  }

 private:
  LlamaDims dims_;
  RotaryEmbedding rope_;
  LlamaForCausalLM net_{nullptr};
};

LlamaVariant variant_for(const std::string& model_type) {
  if (model_type == "mistral") return {"Mistral", false, false, false};
  if (model_type == "qwen2") return {"Qwen2", true, false, false};
  return {"Llama", false, false, false};
}

}  // namespace

std::unique_ptr<TransformerModel> build_llama_family(const Value& hf_config, DType dtype,
                                                     const std::string& device) {
  HfConfigReader cfg(hf_config);
  const std::string model_type = cfg.require_string("model_type");
  LlamaVariant variant = variant_for(model_type);
  if (model_type == "llama") {
    variant.qkv_bias = variant.o_bias = cfg.get_bool("attention_bias", false);
    variant.mlp_bias = cfg.get_bool("mlp_bias", false);
  }
  const std::string act = cfg.get_string("hidden_act", "silu");
  if (act != "silu")
    cfg.fail("hidden_act", "'" + act + "' is not supported for " + model_type + " (only silu)");

  LlamaDims d;
  d.vocab = cfg.require_int("vocab_size");
  d.hidden = cfg.require_int("hidden_size");
  d.intermediate = cfg.require_int("intermediate_size");
  d.layers = cfg.require_int("num_hidden_layers");
  d.heads = cfg.require_int("num_attention_heads");
  d.kv_heads = cfg.get_int("num_key_value_heads", d.heads);
  d.head_dim = cfg.get_int("head_dim", d.heads > 0 ? d.hidden / d.heads : 0);
  d.eps = cfg.get_double("rms_norm_eps", 1e-6);
  d.tied = cfg.get_bool("tie_word_embeddings", false);
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads"})
    if (cfg.require_int(key) <= 0) cfg.fail(key, "must be positive");
  if (d.kv_heads <= 0 || d.heads % d.kv_heads != 0)
    cfg.fail("num_key_value_heads",
             "must divide num_attention_heads (" + std::to_string(d.heads) + ")");
  if (d.head_dim <= 0 || d.head_dim % 2 != 0)
    cfg.fail("head_dim", "must be a positive even number");

  // Sliding-window attention: mistral on every layer; qwen2 only when use_sliding_window, from
  // max_window_layers on.
  std::vector<int64_t> windows(static_cast<size_t>(d.layers), 0);
  const int64_t window = cfg.present("sliding_window") ? cfg.require_int("sliding_window") : 0;
  if (model_type == "mistral") {
    std::fill(windows.begin(), windows.end(), window);
  } else if (model_type == "qwen2" && cfg.get_bool("use_sliding_window", false)) {
    const int64_t from = cfg.get_int("max_window_layers", d.layers);
    for (int64_t i = from; i < d.layers; ++i)
      windows[static_cast<size_t>(i)] = window;
  }

  const Value* scaling = cfg.present("rope_scaling");
  RotaryEmbedding rope(d.head_dim, cfg.get_double("rope_theta", 10000.0),
                       scaling ? *scaling : Value(), cfg.get_int("max_position_embeddings", 2048));
  return std::make_unique<LlamaModel>(hf_config, dtype, device, variant, d, windows,
                                      std::move(rope));
}

}  // namespace models
}  // namespace qplug
