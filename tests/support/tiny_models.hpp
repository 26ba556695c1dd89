// Small model configs for tests that need a real module tree but not real weights.
#pragma once

#include "qplug/sdk/value.hpp"

namespace qplug::testing {

// A Llama with hidden 16, MLP 40, 4 heads / 2 KV heads, vocab 32.
inline Value tiny_llama_config(int64_t layers = 2, bool tied = true) {
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", 32);
  c.set("hidden_size", 16);
  c.set("intermediate_size", 40);
  c.set("num_hidden_layers", layers);
  c.set("num_attention_heads", 4);
  c.set("num_key_value_heads", 2);
  c.set("rms_norm_eps", 1e-5);
  c.set("rope_theta", 10000.0);
  c.set("tie_word_embeddings", tied);
  c.set("torch_dtype", "float32");
  return c;
}

}  // namespace qplug::testing
