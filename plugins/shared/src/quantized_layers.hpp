// How the gptq and awq quantizers put their kernels into a model: the kernel arguments of a
// quantized layer, and the swap of every planned layer's kernel when a checkpoint is loaded (or
// quantized while loading, round-to-nearest).
#pragma once

#include <string>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/host_services.hpp>
#include <qplug/sdk/linear.hpp>
#include <qplug/sdk/model.hpp>
#include <qplug/sdk/targeting.hpp>

namespace qplug::shared {

// The arguments of a `config`-quantized kernel for `layer` (named `name`) of `model`.
LinearKernelArgs quantized_kernel_args(const Model& model, const nn::LinearImpl& layer,
                                       const std::string& name, const QuantConfig& config,
                                       bool pre_quantized);

// Gives every linear the plan quantizes an empty `quant_method` kernel from the registry, to be
// filled by the checkpoint's tensors (pre_quantized) or its dense weights (round-to-nearest).
void install_planned_kernels(Model& model, const TargetPlan& plan, HostServices& services,
                             const std::string& quant_method, const QuantConfig& config,
                             bool pre_quantized);

}  // namespace qplug::shared
