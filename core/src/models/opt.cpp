// OPT as transformers defines it (OPTForCausalLM): learned positions with an offset of 2, decoder
// blocks with LayerNorm before (or, for opt-350m, after) each sub-layer, optional projections
// between the embedding width and the hidden width.
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

// OPTLearnedPositionalEmbedding: position p is row p + 2 (rows 0 and 1 were reserved by fairseq).
constexpr int64_t kPositionOffset = 2;

struct OptDims {
  int64_t vocab = 0, positions = 0, hidden = 0, ffn = 0, layers = 0, heads = 0, word_dim = 0;
  bool bias = true;
  bool norm_before = true;
  bool final_norm = true;
  bool affine = true;
  Activation act = Activation::Relu;
  bool tied = true;
};

class OptAttentionImpl : public torch::nn::Module {
 public:
  OptAttentionImpl(const OptDims& d, DType dtype, const std::string& device)
      : torch::nn::Module("OPTAttention"), heads_(d.heads), hidden_(d.hidden) {
    k_proj = register_module("k_proj", nn::Linear(d.hidden, d.hidden, d.bias, dtype, device));
    v_proj = register_module("v_proj", nn::Linear(d.hidden, d.hidden, d.bias, dtype, device));
    q_proj = register_module("q_proj", nn::Linear(d.hidden, d.hidden, d.bias, dtype, device));
    out_proj = register_module("out_proj", nn::Linear(d.hidden, d.hidden, d.bias, dtype, device));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) {
    const int64_t b = x.size(0), t = x.size(1), head_dim = hidden_ / heads_;
    auto heads = [&](const at::Tensor& y) {
      return y.view({b, t, heads_, head_dim}).transpose(1, 2);
    };
    // OPT scales the queries before the product.
    at::Tensor q = q_proj(x) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    at::Tensor out = attention(heads(q), heads(k_proj(x)), heads(v_proj(x)), mask, 1.0);
    return out_proj(out.transpose(1, 2).reshape({b, t, hidden_}));
  }
  nn::Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_, hidden_;
};
TORCH_MODULE(OptAttention);

class OptDecoderLayerImpl : public torch::nn::Module {
 public:
  OptDecoderLayerImpl(const OptDims& d, DType dtype, const std::string& device)
      : torch::nn::Module("OPTDecoderLayer"), norm_before_(d.norm_before), act_(d.act) {
    const auto options =
        at::TensorOptions().dtype(to_scalar_type(dtype)).device(c10::Device(device));
    self_attn = register_module("self_attn", OptAttention(d, dtype, device));
    self_attn_layer_norm =
        register_module("self_attn_layer_norm", LayerNorm(d.hidden, 1e-5, d.affine, options));
    fc1 = register_module("fc1", nn::Linear(d.hidden, d.ffn, d.bias, dtype, device));
    fc2 = register_module("fc2", nn::Linear(d.ffn, d.hidden, d.bias, dtype, device));
    final_layer_norm =
        register_module("final_layer_norm", LayerNorm(d.hidden, 1e-5, d.affine, options));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) {
    at::Tensor h = norm_before_ ? x + self_attn(self_attn_layer_norm(x), mask)
                                : self_attn_layer_norm(x + self_attn(x, mask));
    if (norm_before_) return h + fc2(activate(act_, fc1(final_layer_norm(h))));
    return final_layer_norm(h + fc2(activate(act_, fc1(h))));
  }
  OptAttention self_attn{nullptr};
  LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  bool norm_before_;
  Activation act_;
};
TORCH_MODULE(OptDecoderLayer);

class OptDecoderImpl : public torch::nn::Module {
 public:
  OptDecoderImpl(const OptDims& d, DType dtype, const std::string& device)
      : torch::nn::Module("OPTDecoder") {
    const auto options =
        at::TensorOptions().dtype(to_scalar_type(dtype)).device(c10::Device(device));
    // Registration order is transformers': it decides named_parameters() and so the default skips.
    embed_tokens = register_module("embed_tokens", Embedding(d.vocab, d.word_dim, options));
    embed_positions =
        register_module("embed_positions", Embedding(d.positions + kPositionOffset, d.hidden,
                                                     options, "OPTLearnedPositionalEmbedding"));
    if (d.word_dim != d.hidden) {
      project_out =
          register_module("project_out", nn::Linear(d.hidden, d.word_dim, false, dtype, device));
      project_in =
          register_module("project_in", nn::Linear(d.word_dim, d.hidden, false, dtype, device));
    }
    if (d.final_norm)
      final_layer_norm =
          register_module("final_layer_norm", LayerNorm(d.hidden, 1e-5, d.affine, options));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < d.layers; ++i)
      layers->push_back(OptDecoderLayer(d, dtype, device));
  }
  Embedding embed_tokens{nullptr}, embed_positions{nullptr};
  nn::Linear project_out{nullptr}, project_in{nullptr};
  LayerNorm final_layer_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(OptDecoder);

class OptBackboneImpl : public torch::nn::Module {
 public:
  OptBackboneImpl(const OptDims& d, DType dtype, const std::string& device)
      : torch::nn::Module("OPTModel") {
    decoder = register_module("decoder", OptDecoder(d, dtype, device));
  }
  OptDecoder decoder{nullptr};
};
TORCH_MODULE(OptBackbone);

class OptForCausalLMImpl : public torch::nn::Module {
 public:
  OptForCausalLMImpl(const OptDims& d, DType dtype, const std::string& device)
      : torch::nn::Module("OPTForCausalLM") {
    model = register_module("model", OptBackbone(d, dtype, device));
    lm_head = register_module("lm_head", nn::Linear(d.word_dim, d.vocab, false, dtype, device));
  }
  OptBackbone model{nullptr};
  nn::Linear lm_head{nullptr};
};
TORCH_MODULE(OptForCausalLM);

class OptModel final : public TransformerModel {
 public:
  OptModel(Value hf_config, DType dtype, std::string device, const OptDims& dims)
      : TransformerModel(std::move(hf_config), dtype, device), dims_(dims) {
    net_ = OptForCausalLM(dims, dtype, device);
    root_ = net_.ptr();
    tie_weights();
  }

  ArchitectureFacts facts() const override {
    ArchitectureFacts f;
    if (dims_.tied)
      f.declared_tied.push_back({"lm_head.weight", "model.decoder.embed_tokens.weight"});
    f.output_embedding = "lm_head";
    f.block_container = "model.decoder.layers";
    f.fused_in_block = {
        {"self_attn.qkv_proj", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}}};
    // AutoAWQ's OPT groups. They need the norms in front of the linears (OPT-350m's post-norm
    // layers have none) with a weight to fold into.
    if (dims_.norm_before && dims_.affine) {
      f.scaling_in_block.push_back({"self_attn_layer_norm",
                                    {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                    "self_attn"});
      f.scaling_in_block.push_back(
          {"self_attn.v_proj", {"self_attn.out_proj"}, "self_attn.out_proj"});
      f.scaling_in_block.push_back({"final_layer_norm", {"fc1"}, "fc1"});
      // relu(x / s) = relu(x) / s for positive s, so fc1's rows can take fc2's scales.
      if (dims_.act == Activation::Relu) f.scaling_in_block.push_back({"fc1", {"fc2"}, "fc2"});
    }
    return f;
  }

  void tie_weights() override {
    if (!dims_.tied || net_->lm_head->is_quantized()) return;
    net_->lm_head->kernel().load_tensor("weight", net_->model->decoder->embed_tokens->weight());
  }

  int64_t num_blocks() const override { return dims_.layers; }

  at::Tensor embed(const at::Tensor& input_ids) override {
    auto& dec = *net_->model->decoder;
    const int64_t t = input_ids.size(1);
    if (t > dims_.positions)
      throw ConfigError("a sequence of " + std::to_string(t) +
                            " tokens is longer than max_position_embeddings (" +
                            std::to_string(dims_.positions) + ")",
                        hf_config().location(), "max_position_embeddings");
    at::Tensor h = dec.embed_tokens(input_ids);
    if (!dec.project_in.is_empty()) h = dec.project_in(h);
    at::Tensor positions =
        at::arange(kPositionOffset, t + kPositionOffset,
                   at::TensorOptions().dtype(at::kLong).device(input_ids.device()));
    return h + dec.embed_positions(positions).unsqueeze(0);
  }

  at::Tensor run_block(int64_t index, const at::Tensor& hidden) override {
    auto layer = net_->model->decoder->layers->ptr<OptDecoderLayerImpl>(index);
    return layer->forward(hidden,
                          causal_mask(hidden.size(1), 0, hidden.scalar_type(), hidden.device()));
  }

  at::Tensor run_block_module(int64_t index, const std::string& module,
                              const at::Tensor& input) override {
    if (module == block_name(index) + ".self_attn") {
      auto layer = net_->model->decoder->layers->ptr<OptDecoderLayerImpl>(index);
      return layer->self_attn->forward(
          input, causal_mask(input.size(1), 0, input.scalar_type(), input.device()));
    }
    return TransformerModel::run_block_module(index, module, input);
  }

  at::Tensor head(const at::Tensor& hidden) override {
    auto& dec = *net_->model->decoder;
    at::Tensor h = dec.final_layer_norm.is_empty() ? hidden : dec.final_layer_norm(hidden);
    if (!dec.project_out.is_empty()) h = dec.project_out(h);
    return net_->lm_head(h).to(at::kFloat);
  }

 private:
  OptDims dims_;
  OptForCausalLM net_{nullptr};
};

}  // namespace

std::unique_ptr<TransformerModel> build_opt(const Value& hf_config, DType dtype,
                                            const std::string& device) {
  HfConfigReader cfg(hf_config);
  OptDims d;
  d.vocab = cfg.require_int("vocab_size");
  d.positions = cfg.require_int("max_position_embeddings");
  d.hidden = cfg.require_int("hidden_size");
  d.ffn = cfg.require_int("ffn_dim");
  d.layers = cfg.require_int("num_hidden_layers");
  d.heads = cfg.require_int("num_attention_heads");
  d.word_dim = cfg.get_int("word_embed_proj_dim", d.hidden);
  d.bias = cfg.get_bool("enable_bias", true);
  d.norm_before = cfg.get_bool("do_layer_norm_before", true);
  d.final_norm = d.norm_before && !cfg.get_bool("_remove_final_layer_norm", false);
  d.affine = cfg.get_bool("layer_norm_elementwise_affine", true);
  d.tied = cfg.get_bool("tie_word_embeddings", true);
  const std::string act = cfg.get_string("activation_function", "relu");
  const auto parsed = activation_from_name(act);
  if (!parsed) cfg.fail("activation_function", "'" + act + "' is not supported");
  d.act = *parsed;
  for (const char* key : {"vocab_size", "max_position_embeddings", "hidden_size", "ffn_dim",
                          "num_hidden_layers", "num_attention_heads"})
    if (cfg.require_int(key) <= 0) cfg.fail(key, "must be positive");
  if (d.hidden % d.heads != 0) cfg.fail("num_attention_heads", "must divide hidden_size");
  return std::make_unique<OptModel>(hf_config, dtype, device, d);
}

}  // namespace models
}  // namespace qplug
