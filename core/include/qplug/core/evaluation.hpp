// Perplexity and greedy generation: the checks that tell whether a (quantized) model still works.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "qplug/sdk/model.hpp"

namespace qplug {

struct PerplexityOptions {
  int64_t seq_len = 512;    // tokens per window, BOS included
  int64_t max_windows = 0;  // 0 = every full window
  int64_t batch_size = 4;
  int64_t bos_id = 1;
  std::function<void(int64_t done, int64_t total)> progress;
};

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;  // nats per predicted token
  int64_t windows = 0;
  int64_t predictions = 0;  // windows x (seq_len - 1)
};

// Non-overlapping windows over `tokens` (a whole corpus tokenized at once, without BOS): window k
// is BOS followed by tokens[(seq_len-1)k, (seq_len-1)(k+1)), and every next-token prediction inside
// a window counts (seq_len - 1 of them; a partial last window is dropped). Throws ConfigError when
// there is not one full window.
PerplexityResult perplexity(Model& model, const std::vector<int64_t>& tokens,
                            const PerplexityOptions& options);

// Greedy decoding from `prompt` (BOS included by the caller): up to max_new_tokens, stopping
// before any of `stop_ids` (EOS; llama2.c-style models end a story with BOS instead). Returns
// only the new tokens.
std::vector<int64_t> generate_greedy(Model& model, const std::vector<int64_t>& prompt,
                                     int64_t max_new_tokens, const std::vector<int64_t>& stop_ids);

}  // namespace qplug
