// The SDK's conformance suites, run against the example plugin.
#include <qplug/sdk/testing/conformance.hpp>

QPLUG_CONFORMANCE_SUITE(Int8Rtn, [] {
  qplug::testing::PluginUnderTest p;
  p.plugin_dir = INT8_RTN_PLUGIN_DIR;
  p.plugin_name = "int8_rtn";
  p.quant_method = "int8_rtn";
  p.config = qplug::Value::map();
  p.config.set("quant_method", "int8_rtn");
  p.kernel_tolerance = 0.01;  // int8 per channel: well under 1% on Gaussian weights
  return p;
}());
