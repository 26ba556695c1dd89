// The awq plugin: AWQ with calibration, round-to-nearest, AutoAWQ gemm/gemv checkpoints, CPU
// kernels.
#include <qplug/sdk/plugin.hpp>

#include "awq_config.hpp"
#include "awq_kernel.hpp"
#include "awq_quantizer.hpp"
#include "int4/int4_kernels.hpp"

namespace {

void register_awq(qplug::Registrar& registrar) {
  qplug::QuantizerRegistration q;
  q.quant_method = "awq";
  q.schema = qplug::awq::make_schema();
  q.factory = [](const qplug::QuantConfig& config, bool pre_quantized) {
    return std::make_unique<qplug::awq::AwqQuantizer>(config, pre_quantized);
  };
  registrar.add_quantizer(std::move(q));

  qplug::LinearKernelRegistration k;
  k.quant_method = "awq";
  k.name = std::string("awq_cpu_") + qplug::int4::int4_kernels().isa;
  k.device = "cpu";
  k.priority = 10;
  k.factory = qplug::awq::make_awq_kernel;
  registrar.add_linear_kernel(std::move(k));
}

}  // namespace

QPLUG_PLUGIN("awq", "0.1.0", "qplug", "AWQ with calibration; AutoAWQ gemm/gemv checkpoints",
             register_awq)
