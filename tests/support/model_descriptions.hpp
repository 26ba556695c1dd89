// Hand-built ModelDescriptions of real architectures (module names, types, definition order and
// registration order as transformers has them), so targeting can be tested without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qplug/sdk/model_description.hpp"

namespace qplug::testing {

inline ParamInfo tensor(std::string name, std::vector<int64_t> shape, DType dtype) {
  ParamInfo p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.dtype = dtype;
  return p;
}

// A module without tensors of its own: containers, activations, dropout, rotary embeddings.
inline ModuleInfo container(std::string name, std::string type) {
  ModuleInfo m;
  m.name = std::move(name);
  m.type = std::move(type);
  return m;
}

// nn.Linear: weight [out, in].
inline ModuleInfo linear(std::string name, int64_t in, int64_t out, bool bias, DType dtype) {
  ModuleInfo m = container(std::move(name), "Linear");
  m.params.push_back(tensor("weight", {out, in}, dtype));
  if (bias) m.params.push_back(tensor("bias", {out}, dtype));
  m.is_linear = true;
  m.in_features = in;
  m.out_features = out;
  m.has_bias = bias;
  m.kernel = "dense";
  m.dtype = dtype;
  return m;
}

// transformers' Conv1D (GPT-2): a linear layer whose weight is stored [in, out].
inline ModuleInfo conv1d(std::string name, int64_t in, int64_t out, DType dtype) {
  ModuleInfo m = linear(std::move(name), in, out, true, dtype);
  m.type = "Conv1D";
  m.params[0].shape = {in, out};
  return m;
}

inline ModuleInfo embedding(std::string name, std::string type, int64_t rows, int64_t dim,
                            DType dtype) {
  ModuleInfo m = container(std::move(name), std::move(type));
  m.params.push_back(tensor("weight", {rows, dim}, dtype));
  m.dtype = dtype;
  return m;
}

inline ModuleInfo norm(std::string name, std::string type, int64_t dim, bool bias, DType dtype) {
  ModuleInfo m = container(std::move(name), std::move(type));
  m.params.push_back(tensor("weight", {dim}, dtype));
  if (bias) m.params.push_back(tensor("bias", {dim}, dtype));
  m.dtype = dtype;
  return m;
}

// Appends a module and, unless its tensors are tied duplicates that named_parameters() leaves
// out, their full names to parameter_order.
inline void add(ModelDescription& d, ModuleInfo m, bool registers_params = true) {
  if (registers_params)
    for (const auto& p : m.params)
      d.parameter_order.push_back(m.name + "." + p.name);
  d.modules.push_back(std::move(m));
}

// ---- Llama (LlamaForCausalLM) ---------------------------------------------------------------

// Defaults are stories260K's: hidden 64, MLP 172, 8 heads / 4 kv heads of dim 8, vocab 512.
struct LlamaShape {
  int64_t hidden = 64;
  int64_t intermediate = 172;
  int64_t heads = 8;
  int64_t kv_heads = 4;
  int64_t head_dim = 8;
  int64_t vocab = 512;
  int64_t layers = 5;
  bool tied = false;
  DType dtype = DType::F32;
};

inline void add_llama_layer(ModelDescription& d, const LlamaShape& s, const std::string& p) {
  const DType t = s.dtype;
  add(d, container(p, "LlamaDecoderLayer"));
  add(d, container(p + ".self_attn", "LlamaAttention"));
  add(d, linear(p + ".self_attn.q_proj", s.hidden, s.heads * s.head_dim, false, t));
  add(d, linear(p + ".self_attn.k_proj", s.hidden, s.kv_heads * s.head_dim, false, t));
  add(d, linear(p + ".self_attn.v_proj", s.hidden, s.kv_heads * s.head_dim, false, t));
  add(d, linear(p + ".self_attn.o_proj", s.heads * s.head_dim, s.hidden, false, t));
  add(d, container(p + ".mlp", "LlamaMLP"));
  add(d, linear(p + ".mlp.gate_proj", s.hidden, s.intermediate, false, t));
  add(d, linear(p + ".mlp.up_proj", s.hidden, s.intermediate, false, t));
  add(d, linear(p + ".mlp.down_proj", s.intermediate, s.hidden, false, t));
  add(d, container(p + ".mlp.act_fn", "SiLU"));
  add(d, norm(p + ".input_layernorm", "LlamaRMSNorm", s.hidden, false, t));
  add(d, norm(p + ".post_attention_layernorm", "LlamaRMSNorm", s.hidden, false, t));
  d.fused_groups.push_back(
      {p + ".self_attn.qkv_proj",
       {p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj"}});
  d.fused_groups.push_back({p + ".mlp.gate_up_proj", {p + ".mlp.gate_proj", p + ".mlp.up_proj"}});
}

inline ModelDescription llama(const LlamaShape& s = {}) {
  ModelDescription d;
  d.model_type = "llama";
  add(d, container("model", "LlamaModel"));
  add(d, embedding("model.embed_tokens", "Embedding", s.vocab, s.hidden, s.dtype));
  add(d, container("model.layers", "ModuleList"));
  for (int64_t i = 0; i < s.layers; ++i)
    add_llama_layer(d, s, "model.layers." + std::to_string(i));
  add(d, norm("model.norm", "LlamaRMSNorm", s.hidden, false, s.dtype));
  add(d, container("model.rotary_emb", "LlamaRotaryEmbedding"));
  // A tied head shares the embedding's tensor: named_parameters() does not list it again.
  add(d, linear("lm_head", s.hidden, s.vocab, false, s.dtype), !s.tied);
  if (s.tied) d.tied_weights.push_back({"lm_head.weight", "model.embed_tokens.weight"});
  d.output_embedding = "lm_head";
  d.block_container = "model.layers";
  d.num_blocks = s.layers;
  return d;
}

inline ModelDescription tied_llama(int64_t layers = 5) {
  LlamaShape s;
  s.layers = layers;
  s.tied = true;
  return llama(s);
}

inline ModelDescription untied_llama(int64_t layers = 5) {
  LlamaShape s;
  s.layers = layers;
  return llama(s);
}

// ---- GPT-2 (GPT2LMHeadModel, head tied to transformer.wte) ---------------------------------

struct Gpt2Shape {
  int64_t hidden = 64;
  int64_t vocab = 512;
  int64_t positions = 128;
  int64_t layers = 2;
  DType dtype = DType::F32;
};

inline ModelDescription gpt2(const Gpt2Shape& s = {}) {
  const DType t = s.dtype;
  const int64_t h = s.hidden;
  ModelDescription d;
  d.model_type = "gpt2";
  add(d, container("transformer", "GPT2Model"));
  add(d, embedding("transformer.wte", "Embedding", s.vocab, h, t));
  add(d, embedding("transformer.wpe", "Embedding", s.positions, h, t));
  add(d, container("transformer.drop", "Dropout"));
  add(d, container("transformer.h", "ModuleList"));
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "transformer.h." + std::to_string(i);
    add(d, container(p, "GPT2Block"));
    add(d, norm(p + ".ln_1", "LayerNorm", h, true, t));
    add(d, container(p + ".attn", "GPT2Attention"));
    add(d, conv1d(p + ".attn.c_attn", h, 3 * h, t));
    add(d, conv1d(p + ".attn.c_proj", h, h, t));
    add(d, container(p + ".attn.attn_dropout", "Dropout"));
    add(d, container(p + ".attn.resid_dropout", "Dropout"));
    add(d, norm(p + ".ln_2", "LayerNorm", h, true, t));
    add(d, container(p + ".mlp", "GPT2MLP"));
    add(d, conv1d(p + ".mlp.c_fc", h, 4 * h, t));
    add(d, conv1d(p + ".mlp.c_proj", 4 * h, h, t));
    add(d, container(p + ".mlp.act", "NewGELUActivation"));
    add(d, container(p + ".mlp.dropout", "Dropout"));
  }
  add(d, norm("transformer.ln_f", "LayerNorm", h, true, t));
  add(d, linear("lm_head", h, s.vocab, false, t), /*registers_params=*/false);
  d.tied_weights.push_back({"lm_head.weight", "transformer.wte.weight"});
  d.output_embedding = "lm_head";
  d.block_container = "transformer.h";
  d.num_blocks = s.layers;
  return d;
}

// ---- OPT (OPTForCausalLM, head tied to model.decoder.embed_tokens) --------------------------

struct OptShape {
  int64_t hidden = 64;
  int64_t ffn = 256;
  int64_t vocab = 512;
  int64_t positions = 130;  // max_position_embeddings + OPT's offset of 2
  int64_t layers = 3;
  bool final_layer_norm = true;  // do_layer_norm_before (opt-125m); opt-350m has none
  DType dtype = DType::F32;
};

inline ModelDescription opt(const OptShape& s = {}) {
  const DType t = s.dtype;
  const int64_t h = s.hidden;
  ModelDescription d;
  d.model_type = "opt";
  add(d, container("model", "OPTModel"));
  add(d, container("model.decoder", "OPTDecoder"));
  add(d, embedding("model.decoder.embed_tokens", "Embedding", s.vocab, h, t));
  add(d, embedding("model.decoder.embed_positions", "OPTLearnedPositionalEmbedding", s.positions, h,
                   t));
  // OPTDecoder registers its final norm before the layers, so the last parameter is in a layer.
  if (s.final_layer_norm) add(d, norm("model.decoder.final_layer_norm", "LayerNorm", h, true, t));
  add(d, container("model.decoder.layers", "ModuleList"));
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i);
    add(d, container(p, "OPTDecoderLayer"));
    add(d, container(p + ".self_attn", "OPTAttention"));
    add(d, linear(p + ".self_attn.k_proj", h, h, true, t));
    add(d, linear(p + ".self_attn.v_proj", h, h, true, t));
    add(d, linear(p + ".self_attn.q_proj", h, h, true, t));
    add(d, linear(p + ".self_attn.out_proj", h, h, true, t));
    add(d, container(p + ".activation_fn", "ReLU"));
    add(d, norm(p + ".self_attn_layer_norm", "LayerNorm", h, true, t));
    add(d, linear(p + ".fc1", h, s.ffn, true, t));
    add(d, linear(p + ".fc2", s.ffn, h, true, t));
    add(d, norm(p + ".final_layer_norm", "LayerNorm", h, true, t));
    d.fused_groups.push_back(
        {p + ".self_attn.qkv_proj",
         {p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj"}});
  }
  add(d, linear("lm_head", h, s.vocab, false, t), /*registers_params=*/false);
  d.tied_weights.push_back({"lm_head.weight", "model.decoder.embed_tokens.weight"});
  d.output_embedding = "lm_head";
  d.block_container = "model.decoder.layers";
  d.num_blocks = s.layers;
  return d;
}

}  // namespace qplug::testing
