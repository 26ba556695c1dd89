#include "qplug/core/evaluation.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "qplug/sdk/errors.hpp"

namespace qplug {

PerplexityResult perplexity(Model& model, const std::vector<int64_t>& tokens,
                            const PerplexityOptions& options) {
  if (options.seq_len < 2) throw ConfigError("seq_len must be at least 2", {}, "seq_len");
  const int64_t stride = options.seq_len - 1;
  int64_t windows = static_cast<int64_t>(tokens.size()) / stride;
  if (options.max_windows > 0) windows = std::min(windows, options.max_windows);
  if (windows == 0)
    throw ConfigError("the data holds " + std::to_string(tokens.size()) +
                          " tokens, fewer than one window of " + std::to_string(stride) +
                          " (+ BOS); use more text or a smaller --seq-len",
                      {}, "seq_len");
  c10::InferenceMode inference;
  const at::Device device(model.device() == "meta" ? "cpu" : model.device());
  double total_nll = 0;
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t n = std::min(batch, windows - first);
    at::Tensor ids = at::empty({n, options.seq_len}, at::TensorOptions().dtype(at::kLong));
    auto* p = ids.data_ptr<int64_t>();
    for (int64_t w = 0; w < n; ++w) {
      p[w * options.seq_len] = options.bos_id;
      const int64_t* src = tokens.data() + (first + w) * stride;
      std::copy(src, src + stride, p + w * options.seq_len + 1);
    }
    ids = ids.to(device);
    at::Tensor logits = model.forward(ids);  // [n, T, V] float32
    at::Tensor predicted = logits.narrow(1, 0, stride).reshape({n * stride, logits.size(2)});
    at::Tensor targets = ids.narrow(1, 1, stride).reshape({n * stride});
    total_nll += at::cross_entropy_loss(predicted, targets, {}, at::Reduction::Sum).item<double>();
    if (options.progress) options.progress(first + n, windows);
  }
  PerplexityResult result;
  result.windows = windows;
  result.predictions = windows * stride;
  result.mean_nll = total_nll / static_cast<double>(result.predictions);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

std::vector<int64_t> generate_greedy(Model& model, const std::vector<int64_t>& prompt,
                                     int64_t max_new_tokens, const std::vector<int64_t>& stop_ids) {
  c10::InferenceMode inference;
  std::vector<int64_t> sequence = prompt;
  std::vector<int64_t> generated;
  const at::Device device(model.device());
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    at::Tensor ids =
        at::tensor(sequence, at::TensorOptions().dtype(at::kLong)).unsqueeze(0).to(device);
    at::Tensor logits = model.forward(ids);
    const int64_t next = logits[0][-1].argmax().item<int64_t>();
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    sequence.push_back(next);
    generated.push_back(next);
  }
  return generated;
}

}  // namespace qplug
