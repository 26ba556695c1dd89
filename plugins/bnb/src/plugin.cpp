// The bnb plugin: bitsandbytes 4-bit (NF4/FP4, double quantization) and LLM.int8.
#include <qplug/sdk/plugin.hpp>

#include "bnb_config.hpp"
#include "bnb_quantizer.hpp"

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

void register_bnb(qplug::Registrar& registrar) {
  registrar.add_quantizer(quantizer_for("bitsandbytes_4bit"));
  registrar.add_quantizer(quantizer_for("bitsandbytes_8bit"));
}

}  // namespace

QPLUG_PLUGIN("bnb", "0.1.0", "qplug", "bitsandbytes NF4/FP4 4-bit and LLM.int8, no calibration",
             register_bnb)
