// The gptq plugin: GPTQ with calibration, GPTQ v1/v2 checkpoints, CPU kernels.
#include <qplug/sdk/plugin.hpp>

#include "gptq_config.hpp"
#include "gptq_kernel.hpp"
#include "gptq_quantizer.hpp"
#include "int4/int4_kernels.hpp"

namespace {

void register_gptq(qplug::Registrar& registrar) {
  qplug::QuantizerRegistration q;
  q.quant_method = "gptq";
  q.schema = qplug::gptq::make_schema();
  q.factory = [](const qplug::QuantConfig& config, bool pre_quantized) {
    return std::make_unique<qplug::gptq::GptqQuantizer>(config, pre_quantized);
  };
  registrar.add_quantizer(std::move(q));

  qplug::LinearKernelRegistration k;
  k.quant_method = "gptq";
  k.name = std::string("gptq_cpu_") + qplug::int4::int4_kernels().isa;
  k.device = "cpu";
  k.priority = 10;
  k.factory = qplug::gptq::make_gptq_kernel;
  registrar.add_linear_kernel(std::move(k));
}

}  // namespace

QPLUG_PLUGIN("gptq", "0.1.0", "qplug", "GPTQ with calibration; GPTQ v1/v2 checkpoints",
             register_gptq)
