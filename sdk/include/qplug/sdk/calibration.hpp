// Calibration for methods that learn from activations (GPTQ, AWQ). The host owns the pipeline:
// it tokenizes the calibration text, cuts the windows, runs the model block by block and hands
// each linear layer's inputs to the method; the method accumulates its statistics (a Hessian, a
// per-channel mean), quantizes, and installs its kernels. Only one block's activations are in
// memory at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qplug/sdk/torch_fwd.hpp"

namespace qplug {

class Model;
class HostServices;

// Token windows, each the same length (BOS first).
class CalibrationData {
 public:
  CalibrationData() = default;
  explicit CalibrationData(std::vector<std::vector<int64_t>> windows);
  const std::vector<std::vector<int64_t>>& windows() const { return windows_; }
  int64_t size() const { return static_cast<int64_t>(windows_.size()); }
  int64_t seq_len() const {
    return windows_.empty() ? 0 : static_cast<int64_t>(windows_[0].size());
  }

 private:
  std::vector<std::vector<int64_t>> windows_;
};

// What a method asks of the calibration data (GPTQConfig's dataset / nsamples / seqlen).
struct CalibrationRequest {
  std::optional<std::string> dataset;  // a text or .ids file named in the config, if any
  int64_t samples = 128;
  int64_t seq_len = 512;
};

// A calibration method's side of the block-by-block pipeline.
class BlockCalibration {
 public:
  virtual ~BlockCalibration();
  // How the block's planned layers (full names, definition order) are quantized: groups, in
  // order. Each group is observed in a fresh pass over the calibration samples, after the
  // previous groups were quantized (GPTQ's true_sequential: one layer per group).
  virtual std::vector<std::vector<std::string>> layer_groups(
      int64_t block, const std::vector<std::string>& layers) = 0;
  // Inputs reaching `layer` while its group is observed, a batch of samples at a time:
  // float32 [samples, tokens, in].
  virtual void observe(const std::string& layer, const at::Tensor& input) = 0;
  // All samples went through the block: quantize the group and install its kernels.
  virtual void quantize_group(Model& model, const std::vector<std::string>& layers,
                              HostServices& services) = 0;
};

}  // namespace qplug
