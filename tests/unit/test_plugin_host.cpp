// The plugin host against fixture plugins that are broken on purpose: each is refused with its
// reason and a message that says what to do, and none of the refused ones runs any code.
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/services.hpp"
#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"
#include "test_support.hpp"
#include "tiny_models.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::fixture_plugin_dir;

PluginHostOptions only(std::vector<std::string> cases) {
  PluginHostOptions options;
  for (const auto& c : cases)
    options.plugin_dirs.push_back((fixture_plugin_dir() / c).string());
  options.use_environment = false;
  options.use_default_dirs = false;
  return options;
}

const RejectedLibrary& single_rejection(const PluginHost& host) {
  EXPECT_EQ(host.rejected().size(), 1u);
  return host.rejected().front();
}

Value config_of(std::initializer_list<std::pair<std::string, Value>> entries) {
  Value v = Value::map();
  for (const auto& [k, val] : entries)
    v.set(k, val);
  return v;
}

TEST(PluginHost, LoadsAWellFormedPlugin) {
  PluginHost host(only({"good"}));
  ASSERT_EQ(host.plugins().size(), 1u);
  const PluginInfo& p = host.plugins().front();
  EXPECT_EQ(p.name, "fixture_good");
  EXPECT_EQ(p.version, "1.0.0");
  EXPECT_EQ(p.quant_methods, std::vector<std::string>{"fixture_good"});
  EXPECT_EQ(p.abi.tag(), PluginHost::host_abi().tag());
  EXPECT_TRUE(host.rejected().empty());
  EXPECT_EQ(host.quant_methods(), std::vector<std::string>{"fixture_good"});
}

TEST(PluginHost, RejectsAnAbiMismatchWithoutLoadingIt) {
  // The fixture aborts the process from a static initialiser if it is ever loaded.
  PluginHost host(only({"abi_mismatch"}));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::AbiMismatch);
  EXPECT_NE(r.message.find("LibTorch 9.9.9"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("rebuild the plugin against LibTorch " +
                           PluginHost::host_abi().torch_version()),
            std::string::npos)
      << r.message;
  EXPECT_TRUE(host.plugins().empty());
}

TEST(PluginHost, RejectsAnotherApiMajorWithoutLoadingIt) {
  PluginHost host(only({"api_major"}));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::ApiMajorMismatch);
  EXPECT_NE(r.message.find("API 99.0"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("rebuild the plugin against this qplug SDK"), std::string::npos);
}

TEST(PluginHost, RejectsANewerApiMinorWithoutLoadingIt) {
  PluginHost host(only({"api_minor"}));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::ApiTooNew);
  EXPECT_NE(r.message.find("1.999"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("upgrade qplug"), std::string::npos) << r.message;
}

TEST(PluginHost, RejectsLibrariesThatAreNotPlugins) {
  PluginHost host(only({"not_a_plugin"}));
  ASSERT_EQ(host.rejected().size(), 2u);
  for (const auto& r : host.rejected())
    EXPECT_EQ(r.reason, PluginLoadReason::NotAPlugin);
  // Sorted by file name: libfixture_not_a_plugin.so, libgarbage.so.
  EXPECT_NE(host.rejected()[0].message.find("no qplug_descriptor export"), std::string::npos);
  EXPECT_NE(host.rejected()[1].message.find("not an ELF shared library"), std::string::npos);
}

TEST(PluginHost, RejectsAPluginWhoseRegisterFunctionThrows) {
  PluginHost host(only({"register_throws"}));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::RegisterFailed);
  EXPECT_NE(r.message.find("fixture: registration exploded"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("fixture_register_throws"), std::string::npos) << r.message;
}

TEST(PluginHost, RejectsARegistrationWithoutFactory) {
  PluginHost host(only({"missing_factory"}));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::MissingFactory);
  EXPECT_NE(r.message.find("'fixture_no_factory' without a quantizer factory"), std::string::npos)
      << r.message;
  // Nothing of the plugin was registered.
  EXPECT_TRUE(host.quant_methods().empty());
}

TEST(PluginHost, ADuplicateMethodIsAnErrorNamingBothFiles) {
  PluginHost host(only({"duplicate"}));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::Duplicate);
  EXPECT_NE(r.message.find("libfixture_duplicate_a.so"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("libfixture_duplicate_b.so"), std::string::npos) << r.message;
  // Asking for the method does not silently pick the first plugin.
  try {
    host.schema("fixture_dup");
    FAIL() << "expected a duplicate error";
  } catch (const PluginLoadError& e) {
    EXPECT_EQ(e.reason(), PluginLoadReason::Duplicate);
    EXPECT_NE(std::string(e.what()).find("libfixture_duplicate_b.so"), std::string::npos);
  }
}

TEST(PluginHost, AnUnknownMethodListsWhatIsAvailableAndWhatWasRejected) {
  PluginHost host(only({"good", "abi_mismatch"}));
  try {
    host.schema("awq");
    FAIL() << "expected NotFound";
  } catch (const PluginLoadError& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.reason(), PluginLoadReason::NotFound);
    EXPECT_NE(m.find("no plugin provides quant_method 'awq'"), std::string::npos) << m;
    EXPECT_NE(m.find("Available: fixture_good"), std::string::npos) << m;
    EXPECT_NE(m.find("libfixture_abi_mismatch.so: ABI mismatch"), std::string::npos) << m;
  }
}

TEST(PluginHost, AQuantizerThatThrowsLeavesTheHostUsable) {
  PluginHost host(only({"throws_in_quantize", "good"}));
  CoreServices services(host);
  ModelBuildOptions meta;
  meta.device = "meta";
  QuantizerHandle throwing = host.create_quantizer(
      host.validate_config(config_of({{"quant_method", "fixture_throws"}})), false);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto model = build_model(testing::tiny_llama_config(), meta);
    try {
      throwing.preprocess_model(*model, services);
      FAIL() << "the fixture throws";
    } catch (const PluginError& e) {
      // A host-owned error that names the plugin and the step.
      EXPECT_EQ(e.plugin(), "fixture_throws");
      EXPECT_NE(std::string(e.what()).find("process_model_before_weight_loading"),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("fixture: quantization exploded"), std::string::npos);
    }
  }
  QuantizerHandle good = host.create_quantizer(
      host.validate_config(config_of({{"quant_method", "fixture_good"}})), false);
  auto model = build_model(testing::tiny_llama_config(), meta);
  const TargetPlan plan = good.preprocess_model(*model, services);
  EXPECT_EQ(plan.quantized_modules().size(), 14u);  // 7 linears x 2 layers; lm_head is tied
  EXPECT_TRUE(model->is_quantized());
  EXPECT_EQ(model->quantization_method(), "fixture_good");
  EXPECT_TRUE(model->hf_config().contains("quantization_config"));
}

TEST(PluginHost, ModulePatchesApplyToPreQuantizedLoadsOnly) {
  PluginHost host(only({"patcher"}));
  ASSERT_EQ(host.plugins().size(), 1u);
  EXPECT_EQ(host.plugins()[0].patches, std::vector<std::string>{"LlamaMLP for fixture_patch"});
  CoreServices services(host);
  ModelBuildOptions meta;
  meta.device = "meta";
  const QuantConfig config = host.validate_config(config_of({{"quant_method", "fixture_patch"}}));
  auto types_of_mlps = [](const Model& model) {
    std::vector<std::string> types;
    for (const auto& m : model.describe().modules)
      if (m.name.size() > 4 && m.name.compare(m.name.size() - 4, 4, ".mlp") == 0)
        types.push_back(m.type);
    return types;
  };
  // Quantizing a dense model: no patch.
  auto fresh = build_model(testing::tiny_llama_config(), meta);
  host.create_quantizer(config, /*pre_quantized=*/false).preprocess_model(*fresh, services);
  EXPECT_EQ(types_of_mlps(*fresh), (std::vector<std::string>{"LlamaMLP", "LlamaMLP"}));
  // Loading a pre-quantized one: every LlamaMLP is replaced on the skeleton, before weights load.
  auto quantized = build_model(testing::tiny_llama_config(), meta);
  host.create_quantizer(config, /*pre_quantized=*/true).preprocess_model(*quantized, services);
  EXPECT_EQ(types_of_mlps(*quantized), (std::vector<std::string>{"PatchedMLP", "PatchedMLP"}));
  EXPECT_EQ(quantized->describe().find("model.layers.0.mlp.up_proj"), nullptr);
}

TEST(PluginHost, HandlesOutliveTheHost) {
  std::unique_ptr<QuantizerHandle> handle;
  {
    PluginHost host(only({"good"}));
    handle = std::make_unique<QuantizerHandle>(host.create_quantizer(
        host.validate_config(config_of({{"quant_method", "fixture_good"}, {"bits", 4}})), false));
  }
  // The host and its registry handle are gone; the plugin's code must still be there.
  EXPECT_EQ(handle->config().get_int("bits"), 4);
  EXPECT_FALSE(handle->requires_calibration());
  EXPECT_EQ(handle->targeting_request().skip_key, "skip_modules");
}

TEST(PluginHost, ValidatesConfigsAgainstThePluginSchema) {
  PluginHost host(only({"good"}));
  try {
    host.validate_config(config_of({{"quant_method", "fixture_good"}, {"bits", 3}}));
    FAIL() << "bits 3 is not allowed";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "bits");
    EXPECT_NE(std::string(e.what()).find("must be one of 4, 8"), std::string::npos) << e.what();
  }
}

TEST(PluginHost, SearchOrderPutsConfigDirsFirstAndShadowsLaterCopies) {
  testing::TempDir first, second;
  const fs::path good = fixture_plugin_dir() / "good" / "libfixture_good.so";
  fs::copy_file(good, first.path() / "libfixture_good.so");
  fs::copy_file(good, second.path() / "libfixture_good.so");
  ASSERT_EQ(setenv("QPLUG_PLUGIN_PATH", (":" + second.path().string() + ":").c_str(), 1), 0);
  PluginHostOptions options;
  options.plugin_dirs = {first.path().string()};
  options.use_default_dirs = false;
  PluginHost host(options);
  unsetenv("QPLUG_PLUGIN_PATH");

  ASSERT_EQ(host.search_path().size(), 2u);
  EXPECT_EQ(host.search_path()[0].origin, "plugin_dirs");
  EXPECT_EQ(host.search_path()[1].origin, "QPLUG_PLUGIN_PATH");
  ASSERT_EQ(host.plugins().size(), 1u);
  EXPECT_EQ(fs::path(host.plugins()[0].path).parent_path(), fs::canonical(first.path()));
  const auto& r = single_rejection(host);
  EXPECT_EQ(r.reason, PluginLoadReason::Shadowed);
  EXPECT_NE(r.message.find("shadowed by"), std::string::npos);
}

TEST(PluginHost, FindsTheBuiltInPluginsNextToTheCoreLibrary) {
  PluginHostOptions options;
  options.use_environment = false;
  PluginHost host(options);
  ASSERT_FALSE(host.search_path().empty());
  EXPECT_EQ(host.search_path().back().origin, "build tree");
  const auto methods = host.quant_methods();
  EXPECT_NE(std::find(methods.begin(), methods.end(), "bitsandbytes_4bit"), methods.end());
}

TEST(ResolveQuantMethod, FollowsTransformersDispatch) {
  EXPECT_EQ(resolve_quant_method(config_of({{"quant_method", "gptq"}})), "gptq");
  EXPECT_EQ(resolve_quant_method(config_of({{"quant_method", "whatever"}, {"load_in_4bit", true}})),
            "bitsandbytes_4bit");
  EXPECT_EQ(resolve_quant_method(config_of({{"load_in_8bit", true}})), "bitsandbytes_8bit");
}

TEST(ResolveQuantMethod, RejectsBadNames) {
  for (const char* bad : {"../libevil", "/tmp/x.so", "GPTQ", "a b", ""}) {
    try {
      resolve_quant_method(config_of({{"quant_method", bad}}));
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), "quant_method");
      EXPECT_NE(std::string(e.what()).find("[a-z0-9_-]+"), std::string::npos);
    }
  }
  EXPECT_THROW(resolve_quant_method(config_of({{"bits", 4}})), ConfigError);
  EXPECT_THROW(resolve_quant_method(config_of({{"quant_method", "bitsandbytes"}})), ConfigError);
  EXPECT_THROW(resolve_quant_method(config_of({{"load_in_4bit", true}, {"load_in_8bit", true}})),
               ConfigError);
}

TEST(ConfigPluginDirs, ResolvesRelativeDirsAgainstTheConfigFile) {
  Value c = config_of({{"plugin_dirs", Value::list({"plugins", "/abs/dir"})}});
  c.set_location(SourceLocation{std::make_shared<std::string>("/etc/qplug/quant.yaml"), 1, 1});
  EXPECT_EQ(config_plugin_dirs(c), (std::vector<std::string>{"/etc/qplug/plugins", "/abs/dir"}));
  EXPECT_THROW(config_plugin_dirs(config_of({{"plugin_dirs", 3}})), ConfigError);
}

}  // namespace
}  // namespace qplug
