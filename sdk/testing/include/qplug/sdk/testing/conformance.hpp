// GoogleTest conformance suites every qplug plugin instantiates, third-party ones included. In a
// test file of the plugin:
//
//   #include <qplug/sdk/testing/conformance.hpp>
//   QPLUG_CONFORMANCE_SUITE(MyMethod, [] {
//     qplug::testing::PluginUnderTest p;
//     p.plugin_dir = MY_PLUGIN_DIR;  p.plugin_name = "my_plugin";  p.quant_method = "my_method";
//     p.config = ...;               // a valid config (quant_method included)
//     p.kernel_tolerance = 0.02;    // the accuracy the kernel promises
//     return p;
//   }())
//
// and link qplug::sdk_testing (which brings GoogleTest's main). The suites check: the descriptor
// (found by the host alone, valid name and version, this host's ABI), the config (validated,
// written back and read again; unknown keys refused), the kernels' numerics against dense math
// within the stated tolerance, that the skip list is honoured on a tiny Llama, that a quantized
// model saves and reloads to the same logits, and that quantizers and kernels outlive the host.
#pragma once

#include <string>

#include <qplug/sdk/value.hpp>

namespace qplug::testing {

struct PluginUnderTest {
  std::string plugin_dir;    // the directory holding the plugin; the host searches only it
  std::string plugin_name;   // the descriptor's name
  std::string quant_method;  // the method under test
  Value config;              // a valid config for the method, quant_method included
  // The kernel's stated accuracy: ||x W_q^T - x W^T|| / ||x W^T|| for Gaussian W and x.
  double kernel_tolerance = 0.05;
  // How closely apply() must agree with x dequantize()^T: about float rounding for kernels that
  // compute with the dequantized weight, more for ones that also quantize activations (LLM.int8).
  double dequant_consistency = 1e-4;
  // A config fragment that keeps every "mlp" layer and lm_head of a Llama in full precision.
  // Null: the quantizer's skip-list key set to ["lm_head", "mlp"] (a list of rules).
  Value skip_mlp_config;
  // Rows x columns of the layers the numerics test uses (some formats need multiples of 128).
  int64_t out_features = 128;
  int64_t in_features = 256;
};

// Registers the suite "<suite>.<check>" with GoogleTest. Call before RUN_ALL_TESTS (the macro
// below does it from a static initialiser of the test program, never of a plugin).
bool register_conformance_suite(const std::string& suite, const PluginUnderTest& plugin);

}  // namespace qplug::testing

#define QPLUG_CONFORMANCE_SUITE(SUITE, ...)                \
  static const bool qplug_conformance_registered_##SUITE = \
      ::qplug::testing::register_conformance_suite(#SUITE, __VA_ARGS__)
