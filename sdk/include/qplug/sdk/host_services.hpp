// What the host offers a plugin while it works on a model: kernels from the registry (so a third
// party's faster kernel for the same format is picked up), progress reporting and logging.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qplug/sdk/calibration.hpp"
#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/targeting.hpp"

namespace qplug {

class Model;

enum class LogLevel { Debug, Info, Warning };

class HostServices {
 public:
  virtual ~HostServices();

  // The highest-priority kernel registered for (quant_method, device) that supports the layer's
  // dtype, from any plugin. Throws UnsupportedError listing what is registered when none fits.
  // The kernel keeps its plugin loaded for as long as it lives.
  virtual OwnedKernel make_linear_kernel(const std::string& quant_method,
                                         const LinearKernelArgs& args) = 0;

  // Runs the model block by block over the calibration windows, handing the inputs of the
  // planned layers to `method` group by group and letting it quantize them; each block's outputs
  // (through its quantized layers, so later layers compensate earlier errors, as GPTQ wants)
  // become the next block's inputs.
  virtual void run_block_calibration(Model& model, const TargetPlan& plan,
                                     const CalibrationData& data, BlockCalibration& method) = 0;

  // Progress of long work: `done` of `total` units of `task` ("block 3/32", "layer q_proj").
  virtual void progress(const std::string& task, int64_t done, int64_t total) = 0;
  virtual void log(LogLevel level, const std::string& message) = 0;

  // SDK 1.1. run_block_calibration, but each block's outputs are computed by the full-precision
  // block before any of its layers is quantized, so every block calibrates on the original
  // model's activations (AutoAWQ's pipeline).
  virtual void run_block_calibration_on_original_activations(Model& model, const TargetPlan& plan,
                                                             const CalibrationData& data,
                                                             BlockCalibration& method) = 0;
};

}  // namespace qplug
