#include "bnb_quantizer.hpp"

#include <qplug/sdk/host_services.hpp>
#include <qplug/sdk/linear.hpp>
#include <qplug/sdk/model.hpp>

#include "bnb_config.hpp"
#include "bnb_tensors.hpp"

namespace qplug::bnb {

BnbQuantizer::BnbQuantizer(const QuantConfig& config, bool pre_quantized)
    : Quantizer(config, pre_quantized) {}

TargetingRequest BnbQuantizer::targeting_request() const {
  TargetingRequest request;
  request.skip_modules = config().get_string_list("llm_int8_skip_modules");
  request.skip_key = "llm_int8_skip_modules";
  return request;
}

int64_t BnbQuantizer::quantized_bytes(const ModuleInfo& linear) const {
  const LinearShape shape{linear.in_features, linear.out_features, linear.has_bias};
  const auto specs = four_bit()
                         ? four_bit_tensor_specs(shape, four_bit_settings(config()), linear.dtype)
                         : eight_bit_tensor_specs(shape, linear.dtype);
  int64_t total = 0;
  for (const auto& spec : specs)
    total += spec.bytes();
  return total;
}

void BnbQuantizer::process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                                       HostServices& services) {
  // Swap the planned layers' kernels on the skeleton: they then quantize the dense weight as it
  // arrives, or accept the packed tensors of a pre-quantized checkpoint.
  for (const NamedLinear& named : model.linear_layers()) {
    if (!plan.quantizes(named.name)) continue;
    LinearKernelArgs args;
    args.layer = named.name;
    args.shape = named.layer->shape();
    args.dtype = named.layer->dtype();
    args.device = model.device();
    args.config = &config();
    args.pre_quantized = pre_quantized();
    named.layer->set_kernel(services.make_linear_kernel(quant_method(), args));
  }
}

Value BnbQuantizer::serialized_config(const TargetPlan& plan) const {
  // The explicit list of kept linears, so any loader makes exactly these decisions.
  return serialize_config(config(), plan.kept_linears());
}

}  // namespace qplug::bnb
