// What a plugin's register function adds to the host: quantizers (one per quant_method, each with
// its config schema), linear kernels and module patches. Registration is explicit, from the
// register function only; there is no registration from static initialisers.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "qplug/sdk/config.hpp"
#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/module_patch.hpp"

namespace qplug {

class Quantizer;

using QuantizerFactory =
    std::function<std::unique_ptr<Quantizer>(const QuantConfig& config, bool pre_quantized)>;
using LinearKernelFactory = std::function<std::unique_ptr<LinearKernel>(const LinearKernelArgs&)>;

struct QuantizerRegistration {
  std::string quant_method;  // [a-z0-9_-]+, unique across all plugins
  ConfigSchema schema;       // validates the method's config; schema.quant_method() must match
  QuantizerFactory factory;
};

struct LinearKernelRegistration {
  std::string quant_method;  // the format it runs ("bitsandbytes_4bit")
  std::string name;          // unique per plugin: "nf4_cpu_avx512"
  std::string device;        // "cpu" or "cuda"
  int priority = 0;          // higher wins among kernels that support the layer
  LinearKernelFactory factory;
};

class Registrar {
 public:
  virtual ~Registrar();
  virtual void add_quantizer(QuantizerRegistration registration) = 0;
  virtual void add_linear_kernel(LinearKernelRegistration registration) = 0;
  virtual void add_module_patch(ModulePatch patch) = 0;
  // The name from the plugin's descriptor.
  virtual const std::string& plugin_name() const = 0;
};

}  // namespace qplug
