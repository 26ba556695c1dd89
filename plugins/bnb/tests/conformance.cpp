// The SDK conformance suites for both bitsandbytes methods.
#include <qplug/sdk/testing/conformance.hpp>

namespace {

qplug::testing::PluginUnderTest bnb(const char* method, const char* flag, double tolerance) {
  qplug::testing::PluginUnderTest p;
  p.plugin_dir = QPLUG_BNB_PLUGIN_DIR;
  p.plugin_name = "bnb";
  p.quant_method = method;
  p.config = qplug::Value::map();
  p.config.set("quant_method", "bitsandbytes");
  p.config.set(flag, true);
  if (std::string(method) == "bitsandbytes_4bit") p.config.set("bnb_4bit_quant_type", "nf4");
  p.kernel_tolerance = tolerance;
  // LLM.int8 quantizes the activations too (row-wise int8), which costs about 1% more.
  if (std::string(method) == "bitsandbytes_8bit") p.dequant_consistency = 0.02;
  return p;
}

}  // namespace

// NF4 of Gaussian weights loses about 10% (relative); LLM.int8 about 1%.
QPLUG_CONFORMANCE_SUITE(Bnb4bit, bnb("bitsandbytes_4bit", "load_in_4bit", 0.12));
QPLUG_CONFORMANCE_SUITE(Bnb8bit, bnb("bitsandbytes_8bit", "load_in_8bit", 0.02));
