#include "quantized_layers.hpp"

namespace qplug::shared {

LinearKernelArgs quantized_kernel_args(const Model& model, const nn::LinearImpl& layer,
                                       const std::string& name, const QuantConfig& config,
                                       bool pre_quantized) {
  LinearKernelArgs args;
  args.layer = name;
  args.shape = layer.shape();
  args.dtype = layer.dtype();
  args.device = model.device();
  args.config = &config;
  args.pre_quantized = pre_quantized;
  return args;
}

void install_planned_kernels(Model& model, const TargetPlan& plan, HostServices& services,
                             const std::string& quant_method, const QuantConfig& config,
                             bool pre_quantized) {
  for (const NamedLinear& named : model.linear_layers()) {
    if (!plan.quantizes(named.name)) continue;
    named.layer->set_kernel(services.make_linear_kernel(
        quant_method,
        quantized_kernel_args(model, *named.layer, named.name, config, pre_quantized)));
  }
}

}  // namespace qplug::shared
