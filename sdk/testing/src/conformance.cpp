#include "qplug/sdk/testing/conformance.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <regex>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qplug/core/config_file.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/services.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear.hpp"

namespace qplug::testing {

namespace {

namespace fs = std::filesystem;

PluginHost host_for(const PluginUnderTest& p) {
  PluginHostOptions options;
  options.plugin_dirs = {p.plugin_dir};
  options.use_environment = false;
  options.use_default_dirs = false;
  return PluginHost(options);
}

// A fresh temporary directory, removed at scope exit.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "qplug-conformance-XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A tiny Llama whose every projection is a multiple of 128 wide, saved with random weights.
fs::path tiny_llama(const fs::path& dir) {
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", 128);
  c.set("hidden_size", 128);
  c.set("intermediate_size", 256);
  c.set("num_hidden_layers", 2);
  c.set("num_attention_heads", 4);
  c.set("num_key_value_heads", 2);
  c.set("rms_norm_eps", 1e-5);
  c.set("tie_word_embeddings", false);
  c.set("torch_dtype", "float32");
  std::unique_ptr<Model> model = build_model(c);
  init_random_weights(*model, 7);
  const fs::path out = dir / "tiny-llama";
  save_model(*model, out.string());
  return out;
}

bool requires_calibration(const PluginHost& host, const PluginUnderTest& p) {
  return host.create_quantizer(host.validate_config(p.config), false).requires_calibration();
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm())
      .item<double>();
}

// ---- the checks ------------------------------------------------------------------------------

void descriptor_sanity(const PluginUnderTest& p) {
  PluginHost host = host_for(p);
  for (const auto& r : host.rejected())
    ADD_FAILURE() << r.path << ": " << r.message;
  const PluginInfo* info = nullptr;
  for (const auto& plugin : host.plugins())
    if (plugin.name == p.plugin_name) info = &plugin;
  ASSERT_NE(info, nullptr) << "no plugin named '" << p.plugin_name << "' in " << p.plugin_dir;
  EXPECT_TRUE(std::regex_match(info->version, std::regex(R"(\d+\.\d+\.\d+([-+].*)?)")))
      << "version '" << info->version << "' is not semantic";
  EXPECT_FALSE(info->vendor.empty());
  EXPECT_EQ(info->abi.tag(), PluginHost::host_abi().tag());
  EXPECT_NE(std::find(info->quant_methods.begin(), info->quant_methods.end(), p.quant_method),
            info->quant_methods.end());
}

void config_round_trip(const PluginUnderTest& p) {
  PluginHost host = host_for(p);
  const QuantConfig config = host.validate_config(p.config);
  EXPECT_EQ(config.quant_method(), p.quant_method);
  const QuantizerHandle quantizer = host.create_quantizer(config, false);
  // What the plugin writes into config.json must read back as the same settings.
  const Value written = quantizer.serialized_config(TargetPlan{});
  ASSERT_TRUE(written.is_map());
  ASSERT_TRUE(written.contains("quant_method"));
  const Value reparsed = parse_json(to_json(written), "quantization_config");
  const QuantConfig again = host.validate_config(reparsed, /*allow_unknown=*/true);
  EXPECT_EQ(again.quant_method(), p.quant_method);
  for (const auto& [key, value] : again.values().as_map()) {
    if (reparsed.contains(key) && config.values().contains(key) && !config.get(key).is_null()) {
      EXPECT_EQ(value, config.get(key))
          << "key '" << key << "' changed on the way through config.json";
    }
  }
  // Unknown keys are refused, naming the key.
  Value bad = p.config;
  bad.set("qplug_conformance_no_such_key", 1);
  try {
    host.validate_config(bad);
    ADD_FAILURE() << "an unknown key was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "qplug_conformance_no_such_key");
  }
}

void kernel_numerics(const PluginUnderTest& p) {
  PluginHost host = host_for(p);
  if (requires_calibration(host, p)) GTEST_SKIP() << "a calibration method: no on-the-fly kernel";
  const QuantConfig config = host.validate_config(p.config);
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor w = at::randn({p.out_features, p.in_features}, gen) * 0.02;
  const at::Tensor x = at::randn({5, p.in_features}, gen);
  LinearKernelArgs args;
  args.layer = "conformance.layer";
  args.shape = {p.in_features, p.out_features, false};
  args.config = &config;
  OwnedKernel kernel = host.make_linear_kernel(p.quant_method, args);
  kernel.kernel->load_tensor("weight", w);
  kernel.kernel->process_weights_after_loading();
  const at::Tensor y = kernel.kernel->apply(x);
  EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{5, p.out_features}));
  EXPECT_LT(relative_error(y, at::matmul(x, w.t())), p.kernel_tolerance)
      << "the kernel is less accurate than it states";
  // apply() must compute with exactly the weight dequantize() reports.
  EXPECT_LT(relative_error(y, at::matmul(x, kernel.kernel->dequantize(DType::F32).t())),
            p.dequant_consistency);
  EXPECT_GT(kernel.kernel->bytes(), 0);
}

LoadedModel quantize(const PluginHost& host, const fs::path& model, const Value& config) {
  LoadOptions load;
  load.host = &host;
  load.quant_config = &config;
  return load_model(model.string(), load);
}

void skip_list_honoured(const PluginUnderTest& p) {
  PluginHost host = host_for(p);
  if (requires_calibration(host, p))
    GTEST_SKIP() << "calibration methods are checked by their own suites";
  ScratchDir dir;
  const fs::path model = tiny_llama(dir.path);
  Value config = p.config;
  if (p.skip_mlp_config.is_map()) {
    for (const auto& [key, value] : p.skip_mlp_config.as_map())
      config.set(key, value);
  } else {
    const QuantizerHandle probe = host.create_quantizer(host.validate_config(p.config), false);
    const std::string key = probe.targeting_request().skip_key;
    ASSERT_FALSE(key.empty()) << "the quantizer names no skip-list key";
    config.set(key, Value::list({"lm_head", "mlp"}));
  }
  LoadedModel loaded = quantize(host, model, config);
  int quantized = 0;
  for (const NamedLinear& l : loaded.model->linear_layers()) {
    const bool kept = l.name.find(".mlp.") != std::string::npos || l.name == "lm_head";
    EXPECT_EQ(l.layer->is_quantized(), !kept) << l.name;
    quantized += l.layer->is_quantized();
  }
  EXPECT_EQ(quantized, 8);  // q, k, v, o in two blocks
}

void serialization_round_trip(const PluginUnderTest& p) {
  PluginHost host = host_for(p);
  if (requires_calibration(host, p))
    GTEST_SKIP() << "calibration methods are checked by their own suites";
  ScratchDir dir;
  const fs::path model = tiny_llama(dir.path);
  LoadedModel loaded = quantize(host, model, p.config);
  if (!loaded.quantizer->is_serializable()) GTEST_SKIP() << "the method cannot be saved";
  const fs::path out = dir.path / "quantized";
  SaveOptions save;
  save.extra_files = loaded.quantizer->extra_files(loaded.plan);
  save_model(*loaded.model, out.string(), save);
  LoadOptions plain;
  plain.host = &host;
  LoadedModel reloaded = load_model(out.string(), plain);
  EXPECT_TRUE(reloaded.model->is_quantized());
  const at::Tensor ids = at::arange(1, 33, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  EXPECT_TRUE(at::equal(loaded.model->forward(ids), reloaded.model->forward(ids)))
      << "a saved and reloaded model computes differently";
}

void handles_outlive_host(const PluginUnderTest& p) {
  std::unique_ptr<QuantizerHandle> quantizer;
  OwnedKernel kernel;
  std::unique_ptr<QuantConfig> config;
  bool calibration = false;
  {
    PluginHost host = host_for(p);
    config = std::make_unique<QuantConfig>(host.validate_config(p.config));
    quantizer = std::make_unique<QuantizerHandle>(host.create_quantizer(*config, false));
    calibration = quantizer->requires_calibration();
    if (!calibration) {
      LinearKernelArgs args;
      args.layer = "conformance.layer";
      args.shape = {p.in_features, p.out_features, false};
      args.config = config.get();
      kernel = host.make_linear_kernel(p.quant_method, args);
    }
  }
  // The host is gone; the plugin's code must still be loaded for what it handed out.
  EXPECT_EQ(quantizer->quant_method(), p.quant_method);
  EXPECT_NO_THROW(quantizer->targeting_request());
  if (!calibration) {
    at::Generator gen = at::detail::createCPUGenerator(4);
    kernel.kernel->load_tensor("weight", at::randn({p.out_features, p.in_features}, gen));
    kernel.kernel->process_weights_after_loading();
    EXPECT_EQ(kernel.kernel->apply(at::ones({1, p.in_features})).size(1), p.out_features);
  }
}

// A GoogleTest fixture that runs one check.
class ConformanceCheck : public ::testing::Test {
 public:
  ConformanceCheck(std::function<void(const PluginUnderTest&)> check, PluginUnderTest plugin)
      : check_(std::move(check)), plugin_(std::move(plugin)) {}
  void TestBody() override { check_(plugin_); }

 private:
  std::function<void(const PluginUnderTest&)> check_;
  PluginUnderTest plugin_;
};

}  // namespace

bool register_conformance_suite(const std::string& suite, const PluginUnderTest& plugin) {
  const std::pair<const char*, void (*)(const PluginUnderTest&)> checks[] = {
      {"DescriptorSanity", descriptor_sanity},
      {"ConfigRoundTrip", config_round_trip},
      {"KernelNumerics", kernel_numerics},
      {"SkipListHonoured", skip_list_honoured},
      {"SerializationRoundTrip", serialization_round_trip},
      {"HandlesOutliveHost", handles_outlive_host},
  };
  for (const auto& [name, check] : checks) {
    auto function = check;
    ::testing::RegisterTest(("Conformance_" + suite).c_str(), name, nullptr, nullptr, __FILE__,
                            __LINE__, [function, plugin]() -> ::testing::Test* {
                              return new ConformanceCheck(function, plugin);
                            });
  }
  return true;
}

}  // namespace qplug::testing
