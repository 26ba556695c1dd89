// The SDK conformance suites for awq. Round-to-nearest (rtn: true) is the method's on-the-fly
// path; the calibrated path is covered by test_awq_plugin.cpp.
#include <qplug/sdk/testing/conformance.hpp>

QPLUG_CONFORMANCE_SUITE(AwqRtn, [] {
  qplug::testing::PluginUnderTest p;
  p.plugin_dir = QPLUG_AWQ_PLUGIN_DIR;
  p.plugin_name = "awq";
  p.quant_method = "awq";
  p.config = qplug::Value::map();
  p.config.set("quant_method", "awq");
  p.config.set("rtn", true);
  p.kernel_tolerance = 0.12;  // 4-bit, groups of 128, Gaussian weights: about 11%
  // skip_mlp_config left null: modules_to_not_convert: [lm_head, mlp].
  return p;
}());

QPLUG_CONFORMANCE_SUITE(AwqRtnGemv, [] {
  qplug::testing::PluginUnderTest p;
  p.plugin_dir = QPLUG_AWQ_PLUGIN_DIR;
  p.plugin_name = "awq";
  p.quant_method = "awq";
  p.config = qplug::Value::map();
  p.config.set("quant_method", "awq");
  p.config.set("rtn", true);
  p.config.set("version", "gemv");
  p.config.set("group_size", 64);
  p.kernel_tolerance = 0.12;
  return p;
}());
