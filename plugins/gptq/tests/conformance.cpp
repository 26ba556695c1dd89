// The SDK conformance suites for gptq. Round-to-nearest (rtn: true) is the method's on-the-fly
// path; the calibrated path is covered by test_gptq_plugin.cpp.
#include <qplug/sdk/testing/conformance.hpp>

QPLUG_CONFORMANCE_SUITE(GptqRtn, [] {
  qplug::testing::PluginUnderTest p;
  p.plugin_dir = QPLUG_GPTQ_PLUGIN_DIR;
  p.plugin_name = "gptq";
  p.quant_method = "gptq";
  p.config = qplug::Value::map();
  p.config.set("quant_method", "gptq");
  p.config.set("rtn", true);
  p.config.set("sym", false);
  p.kernel_tolerance = 0.12;  // 4-bit, groups of 128, Gaussian weights: about 11%
  // GPTQModel's way to keep layers dense; lm_head is outside the blocks anyway.
  p.skip_mlp_config = qplug::Value::map();
  qplug::Value dynamic = qplug::Value::map();
  dynamic.set("-:.*\\.mlp\\.", qplug::Value::map());
  p.skip_mlp_config.set("dynamic", dynamic);
  return p;
}());
