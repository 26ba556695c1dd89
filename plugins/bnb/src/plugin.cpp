// The bnb plugin: bitsandbytes 4-bit (NF4/FP4, double quantization) and LLM.int8.
#include <qplug/sdk/plugin.hpp>

#include "bnb_config.hpp"
#include "bnb_quantizer.hpp"
#include "eight_bit_kernel.hpp"
#include "four_bit_kernel.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

namespace {

qplug::QuantizerRegistration quantizer_for(const std::string& method) {
  qplug::QuantizerRegistration r;
  r.quant_method = method;
  r.schema = qplug::bnb::make_schema(method);
  r.factory = [](const qplug::QuantConfig& config, bool pre_quantized) {
    return std::make_unique<qplug::bnb::BnbQuantizer>(config, pre_quantized);
  };
  return r;
}

qplug::LinearKernelRegistration kernel(const std::string& method, const std::string& name,
                                       qplug::LinearKernelFactory factory) {
  qplug::LinearKernelRegistration k;
  k.quant_method = method;
  k.name = name;
  k.device = "cpu";
  k.priority = 10;
  k.factory = std::move(factory);
  return k;
}

void register_bnb(qplug::Registrar& registrar) {
  registrar.add_quantizer(quantizer_for("bitsandbytes_4bit"));
  registrar.add_quantizer(quantizer_for("bitsandbytes_8bit"));
  // One kernel per method; it picks scalar / AVX2 / AVX-512 code at run time.
  const std::string isa = qplug::bnb::cpu_kernels().isa;
  registrar.add_linear_kernel(
      kernel("bitsandbytes_4bit", "bnb_4bit_cpu_" + isa, qplug::bnb::make_four_bit_kernel));
  registrar.add_linear_kernel(
      kernel("bitsandbytes_8bit", "bnb_int8_cpu_" + isa, qplug::bnb::make_eight_bit_kernel));
}

}  // namespace

QPLUG_PLUGIN("bnb", "0.1.0", "qplug", "bitsandbytes NF4/FP4 4-bit and LLM.int8, no calibration",
             register_bnb)
