// The host's HostServices: kernels from the plugin host's registry, progress and log output
// through callbacks the application chooses (the CLI draws progress bars; tests stay quiet).
#pragma once

#include <functional>
#include <string>

#include "qplug/core/plugin_host.hpp"
#include "qplug/sdk/host_services.hpp"

namespace qplug {

class CoreServices final : public HostServices {
 public:
  using ProgressSink = std::function<void(const std::string& task, int64_t done, int64_t total)>;
  using LogSink = std::function<void(LogLevel level, const std::string& message)>;

  explicit CoreServices(const PluginHost& host, ProgressSink progress = {}, LogSink log = {})
      : host_(host), progress_(std::move(progress)), log_(std::move(log)) {}

  OwnedKernel make_linear_kernel(const std::string& quant_method,
                                 const LinearKernelArgs& args) override {
    return host_.make_linear_kernel(quant_method, args);
  }
  void run_block_calibration(Model& model, const TargetPlan& plan, const CalibrationData& data,
                             BlockCalibration& method) override;
  void run_block_calibration_on_original_activations(Model& model, const TargetPlan& plan,
                                                     const CalibrationData& data,
                                                     BlockCalibration& method) override;
  void progress(const std::string& task, int64_t done, int64_t total) override {
    if (progress_) progress_(task, done, total);
  }
  void log(LogLevel level, const std::string& message) override {
    if (log_) log_(level, message);
  }

 private:
  const PluginHost& host_;
  ProgressSink progress_;
  LogSink log_;
};

}  // namespace qplug
