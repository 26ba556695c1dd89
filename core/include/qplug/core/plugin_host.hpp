// The plugin host: finds plugins on the search path, checks that each was built for this host
// before running any of its code, loads them (RTLD_NOW | RTLD_LOCAL), calls their register
// functions, and hands out quantizers and kernels by quant_method.
//
// Search order (first wins when two copies of a plugin file share a name):
//   1. the config's plugin_dirs   2. QPLUG_PLUGIN_PATH (colon separated)
//   3. <dir of libqplug_core>/qplug/plugins (the install dir, or the build tree's plugin dir)
// Every *.so there is examined; what is not used is listed in rejected() with its reason.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qplug/core/quantizer_handle.hpp"
#include "qplug/sdk/abi.hpp"
#include "qplug/sdk/config.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

class Registry;

struct PluginHostOptions {
  std::vector<std::string> plugin_dirs;  // searched first, in order
  bool use_environment = true;           // read QPLUG_PLUGIN_PATH
  bool use_default_dirs = true;          // the install / build-tree plugin dir
};

struct SearchDir {
  std::string path;
  std::string origin;  // "plugin_dirs", "QPLUG_PLUGIN_PATH", "install dir", "build tree"
  bool exists = false;
};

struct KernelInfo {
  std::string quant_method;
  std::string name;
  std::string device;
  int priority = 0;
  std::string plugin;
};

struct PluginInfo {
  std::string name;
  std::string version;
  std::string vendor;
  std::string description;
  std::string path;
  AbiIdentity abi;  // api_major/minor from the descriptor, the rest from its ABI tag
  std::vector<std::string> quant_methods;
  std::vector<KernelInfo> kernels;
  std::vector<std::string> patches;  // "<module_type> for <methods>"
};

struct RejectedLibrary {
  std::string path;
  PluginLoadReason reason = PluginLoadReason::NotAPlugin;
  std::string message;  // what is wrong and what to do
};

class PluginHost {
 public:
  explicit PluginHost(PluginHostOptions options = {});
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  // The identity every plugin must match.
  static AbiIdentity host_abi();

  const std::vector<SearchDir>& search_path() const { return search_path_; }
  const std::vector<PluginInfo>& plugins() const { return plugins_; }
  const std::vector<RejectedLibrary>& rejected() const { return rejected_; }
  std::vector<std::string> quant_methods() const;  // sorted

  // The schema of a method. Throws PluginLoadError(NotFound) listing the available methods and
  // every rejected library, or PluginLoadError(Duplicate) when two plugins provide it.
  const ConfigSchema& schema(const std::string& quant_method) const;

  // Validates a raw config for its method (resolve_quant_method picks the method).
  // allow_unknown: keys outside the schema are ignored (configs written by other tools).
  QuantConfig validate_config(const Value& raw, bool allow_unknown = false) const;
  // Builds the method's quantizer; the handle keeps the plugin loaded and outlives the host.
  QuantizerHandle create_quantizer(const QuantConfig& config, bool pre_quantized) const;

  // The best kernel for (method, device) across all plugins (highest priority that supports the
  // layer), or the dense kernel for method "". Throws UnsupportedError listing the candidates.
  OwnedKernel make_linear_kernel(const std::string& quant_method,
                                 const LinearKernelArgs& args) const;
  std::vector<KernelInfo> kernels() const;

  std::shared_ptr<const Registry> registry() const { return registry_; }

 private:
  void load_all();
  void examine(const std::string& path);

  PluginHostOptions options_;
  std::vector<SearchDir> search_path_;
  std::vector<PluginInfo> plugins_;
  std::vector<RejectedLibrary> rejected_;
  std::shared_ptr<Registry> registry_;
};

// HF's quantizer dispatch: load_in_4bit / load_in_8bit select "bitsandbytes_4bit" /
// "bitsandbytes_8bit" whatever quant_method says; otherwise quant_method, which must match
// [a-z0-9_-]+. Throws ConfigError naming the key.
std::string resolve_quant_method(const Value& raw);

}  // namespace qplug
