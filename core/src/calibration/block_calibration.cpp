#include <algorithm>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "qplug/core/calibration.hpp"
#include "qplug/core/services.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/guard.hpp"
#include "qplug/sdk/linear.hpp"

namespace qplug {

CalibrationData make_calibration_data(const std::vector<int64_t>& tokens, int64_t samples,
                                      int64_t seq_len, int64_t bos_id) {
  if (samples <= 0 || seq_len < 2)
    throw ConfigError("calibration needs at least one sample of at least 2 tokens (got " +
                          std::to_string(samples) + " x " + std::to_string(seq_len) + ")",
                      {}, "nsamples");
  const int64_t stride = seq_len - 1;
  const int64_t available = static_cast<int64_t>(tokens.size()) / stride;
  if (available < samples)
    throw ConfigError("the calibration text holds " + std::to_string(tokens.size()) +
                          " tokens, fewer than the config's samples x (window length - 1) = " +
                          std::to_string(samples) + " x " + std::to_string(stride) +
                          "; give more text, or ask for fewer or shorter samples (GPTQ: nsamples "
                          "/ seqlen, AWQ: max_calib_samples / max_calib_seq_len)",
                      {}, "nsamples");
  std::vector<std::vector<int64_t>> windows;
  for (int64_t s = 0; s < samples; ++s) {
    // Spread over the whole text rather than its beginning only.
    const int64_t slot = s * available / samples;
    std::vector<int64_t> w{bos_id};
    w.insert(w.end(), tokens.begin() + slot * stride, tokens.begin() + (slot + 1) * stride);
    windows.push_back(std::move(w));
  }
  return CalibrationData(std::move(windows));
}

namespace {

// Thrown by an input observer to cut a block's forward short: the group's layers all saw their
// inputs, and the rest of the block would compute nothing calibration uses.
struct EnoughObserved {};

// The planned (to-quantize) linears under a block, in definition order.
std::vector<std::string> planned_layers(Model& model, const TargetPlan& plan,
                                        const std::string& block) {
  std::vector<std::string> out;
  for (const NamedLinear& l : model.linear_layers())
    if (l.name.rfind(block + ".", 0) == 0 && plan.quantizes(l.name)) out.push_back(l.name);
  return out;
}

void check_groups(const std::vector<std::vector<std::string>>& groups,
                  const std::vector<std::string>& layers, const std::string& block) {
  std::set<std::string> seen;
  for (const auto& group : groups)
    for (const auto& name : group) {
      if (std::find(layers.begin(), layers.end(), name) == layers.end())
        throw KernelError("the calibration method grouped '" + name + "', which is not a layer " +
                          "planned for quantization in " + block);
      if (!seen.insert(name).second)
        throw KernelError("the calibration method grouped '" + name + "' twice");
    }
  for (const auto& name : layers)
    if (!seen.count(name))
      throw KernelError("the calibration method left '" + name + "' out of every group");
}

}  // namespace

void run_block_calibration(Model& model, const TargetPlan& plan, const CalibrationData& data,
                           BlockCalibration& method, HostServices& services,
                           bool next_block_sees_quantized_outputs) {
  if (data.size() == 0) throw ConfigError("no calibration samples", {}, "nsamples");
  c10::InferenceMode inference;
  const at::Device device(model.device());
  // Samples go through the blocks in batches of about kBatchTokens tokens: few enough large ops
  // to be fast, small enough that attention scores stay a few hundred MB.
  constexpr int64_t kBatchTokens = 2048;
  const int64_t batch = std::max<int64_t>(1, kBatchTokens / std::max<int64_t>(1, data.seq_len()));
  std::vector<at::Tensor> hidden;
  for (int64_t first = 0; first < data.size(); first += batch) {
    const int64_t n = std::min(batch, data.size() - first);
    at::Tensor ids = at::empty({n, data.seq_len()}, at::TensorOptions().dtype(at::kLong));
    for (int64_t i = 0; i < n; ++i)
      std::copy(data.windows()[first + i].begin(), data.windows()[first + i].end(),
                ids.data_ptr<int64_t>() + i * data.seq_len());
    hidden.push_back(model.embed(ids.to(device)));
  }

  const int64_t blocks = model.num_blocks();
  for (int64_t b = 0; b < blocks; ++b) {
    const std::string block = model.block_name(b);
    const std::vector<std::string> layers = planned_layers(model, plan, block);
    // AutoAWQ-style methods hand the next block the full-precision outputs, computed before any
    // layer of this block changes.
    std::vector<at::Tensor> full_precision_outputs;
    if (!layers.empty() && !next_block_sees_quantized_outputs)
      for (const at::Tensor& h : hidden)
        full_precision_outputs.push_back(model.run_block(b, h));
    if (!layers.empty()) {
      const auto groups = method.layer_groups(b, layers);
      check_groups(groups, layers, block);
      int64_t done = 0;
      for (const auto& group : groups) {
        std::vector<nn::LinearImpl*> observed;
        size_t seen_in_pass = 0;
        for (const auto& name : group) {
          nn::LinearImpl* layer = model.find_linear(name);
          const int64_t in = layer->in_features();
          const size_t group_size = group.size();
          layer->set_input_observer(
              [&method, &seen_in_pass, name, in, group_size](const at::Tensor& x) {
                method.observe(name, x.reshape({x.size(0), -1, in}).to(at::kFloat));
                // Once every layer of the group saw this batch, the rest of the block is not
                // needed.
                if (++seen_in_pass == group_size) throw EnoughObserved{};
              });
          observed.push_back(layer);
        }
        try {
          for (const at::Tensor& h : hidden) {
            seen_in_pass = 0;
            try {
              (void)model.run_block(b, h);
            } catch (const EnoughObserved&) {
            }
          }
        } catch (...) {
          for (nn::LinearImpl* layer : observed)
            layer->set_input_observer(nullptr);
          throw;
        }
        for (nn::LinearImpl* layer : observed)
          layer->set_input_observer(nullptr);
        method.quantize_group(model, group, services);
        done += static_cast<int64_t>(group.size());
        services.progress(block + ": quantizing layers", done, static_cast<int64_t>(layers.size()));
      }
    }
    if (!full_precision_outputs.empty()) {
      hidden = std::move(full_precision_outputs);
    } else {
      // The next block sees what this block computes with its quantized layers.
      for (at::Tensor& h : hidden)
        h = model.run_block(b, h);
    }
    services.progress("calibrating blocks", b + 1, blocks);
  }
}

void CoreServices::run_block_calibration(Model& model, const TargetPlan& plan,
                                         const CalibrationData& data, BlockCalibration& method) {
  qplug::run_block_calibration(model, plan, data, method, *this, true);
}

void CoreServices::run_block_calibration_on_original_activations(Model& model,
                                                                 const TargetPlan& plan,
                                                                 const CalibrationData& data,
                                                                 BlockCalibration& method) {
  qplug::run_block_calibration(model, plan, data, method, *this, false);
}

}  // namespace qplug
