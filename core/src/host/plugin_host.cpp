#include "qplug/core/plugin_host.hpp"

#include <algorithm>
#include <set>

#include <c10/core/Device.h>
#include "host/plugin_files.hpp"
#include "host/registry.hpp"
#include "qplug/sdk/guard.hpp"

#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/quantizer.hpp"

namespace qplug {

namespace {

// Collects one plugin's registrations; the Registry accepts them all or none.
class StagingRegistrar final : public Registrar {
 public:
  explicit StagingRegistrar(std::string plugin_name) : plugin_name_(std::move(plugin_name)) {}
  void add_quantizer(QuantizerRegistration registration) override {
    staged.quantizers.push_back(std::move(registration));
  }
  void add_linear_kernel(LinearKernelRegistration registration) override {
    staged.kernels.push_back(std::move(registration));
  }
  void add_module_patch(ModulePatch patch) override { staged.patches.push_back(std::move(patch)); }
  const std::string& plugin_name() const override { return plugin_name_; }

  Registrations staged;

 private:
  std::string plugin_name_;
};

std::string file_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string device_type(const std::string& device) {
  const auto colon = device.find(':');
  return colon == std::string::npos ? device : device.substr(0, colon);
}

}  // namespace

AbiIdentity PluginHost::host_abi() {
  return compiled_abi();
}

PluginHost::PluginHost(PluginHostOptions options)
    : options_(std::move(options)), registry_(std::make_shared<Registry>()) {
  search_path_ = build_search_path(options_);
  load_all();
}

PluginHost::~PluginHost() = default;

void PluginHost::load_all() {
  std::map<std::string, std::string> first_by_file_name;
  for (const auto& dir : search_path_) {
    if (!dir.exists) continue;
    for (const auto& path : candidate_files(dir.path)) {
      auto [it, inserted] = first_by_file_name.emplace(file_name(path), path);
      if (!inserted) {
        rejected_.push_back(
            {path, PluginLoadReason::Shadowed,
             "shadowed by " + it->second + ", which comes earlier in the plugin search path"});
        continue;
      }
      examine(path);
    }
  }
}

void PluginHost::examine(const std::string& path) {
  try {
    const AbiIdentity host = host_abi();
    const AbiIdentity tag = check_exports_without_loading(path, host);
    std::shared_ptr<PluginLibrary> library = load_plugin_library(path, tag, host);
    keep_loaded_until_exit(library);
    for (const auto& loaded : plugins_)
      if (loaded.name == library->name)
        throw PluginLoadError(PluginLoadReason::Duplicate, path,
                              "plugin name '" + library->name + "' is already taken by " +
                                  loaded.path + "; remove one of the two files");

    StagingRegistrar registrar(library->name);
    try {
      guarded(library->name, "its register function", [&] {
        library->register_fn(
            reinterpret_cast<qplug_registrar*>(static_cast<Registrar*>(&registrar)));
      });
    } catch (const Error& e) {
      throw PluginLoadError(PluginLoadReason::RegisterFailed, path, e.what());
    }

    PluginInfo info;
    info.name = library->name;
    info.version = library->version;
    info.vendor = library->vendor;
    info.description = library->description;
    info.path = path;
    info.abi = library->abi;
    for (const auto& q : registrar.staged.quantizers)
      info.quant_methods.push_back(q.quant_method);
    for (const auto& k : registrar.staged.kernels)
      info.kernels.push_back({k.quant_method, k.name, k.device, k.priority, library->name});
    for (const auto& p : registrar.staged.patches) {
      std::string methods;
      for (const auto& m : p.quant_methods)
        methods += (methods.empty() ? "" : ", ") + m;
      info.patches.push_back(p.module_type + " for " + methods);
    }
    registry_->add_plugin(library, std::move(registrar.staged));
    plugins_.push_back(std::move(info));
  } catch (const PluginLoadError& e) {
    rejected_.push_back({path, e.reason(), e.what()});
  }
}

std::vector<std::string> PluginHost::quant_methods() const {
  return registry_->quant_methods();
}

const ConfigSchema& PluginHost::schema(const std::string& quant_method) const {
  const std::string conflict = registry_->conflict(quant_method);
  if (!conflict.empty()) throw PluginLoadError(PluginLoadReason::Duplicate, "", conflict);
  if (const QuantizerEntry* entry = registry_->quantizer(quant_method))
    return entry->registration.schema;

  std::string message = "no plugin provides quant_method '" + quant_method + "'. Available: ";
  const auto methods = quant_methods();
  if (methods.empty()) message += "none";
  for (size_t i = 0; i < methods.size(); ++i)
    message += (i ? ", " : "") + methods[i];
  message += ".";
  if (!rejected_.empty()) {
    message += " Libraries on the plugin path that were not loaded:";
    for (const auto& r : rejected_)
      message += "\n  " + r.path + ": " + to_string(r.reason) + ": " + r.message;
  }
  message += "\nSearched:";
  for (const auto& d : search_path_)
    message += "\n  " + d.path + " (" + d.origin + (d.exists ? "" : ", missing") + ")";
  throw PluginLoadError(PluginLoadReason::NotFound, "", message);
}

QuantConfig PluginHost::validate_config(const Value& raw, bool allow_unknown) const {
  const std::string method = resolve_quant_method(raw);
  return schema(method).validate(raw, allow_unknown);
}

QuantizerHandle PluginHost::create_quantizer(const QuantConfig& config, bool pre_quantized) const {
  schema(config.quant_method());  // reports a missing or conflicted method
  const QuantizerEntry* entry = registry_->quantizer(config.quant_method());
  const auto& library = entry->library;
  std::unique_ptr<Quantizer> made = guarded(library->name, "its quantizer factory", [&] {
    return entry->registration.factory(config, pre_quantized);
  });
  if (!made)
    throw PluginError(library->name, "plugin '" + library->name + "' returned no quantizer for '" +
                                         config.quant_method() + "'");
  // The deleter holds the library, so the plugin's code outlives the object.
  std::shared_ptr<Quantizer> quantizer(made.release(), [library](Quantizer* q) { delete q; });
  return QuantizerHandle(std::move(quantizer), library->name, registry_);
}

OwnedKernel PluginHost::make_linear_kernel(const std::string& quant_method,
                                           const LinearKernelArgs& args) const {
  if (quant_method.empty()) return make_dense_kernel(args);
  const std::string type = device_type(args.device);
  // The meta device holds no data: any kernel of the method can describe its tensors there.
  const std::string lookup = type == "meta" ? "cpu" : type;
  const auto candidates = registry_->kernels_for(quant_method, lookup);
  std::string tried;
  for (const KernelEntry* entry : candidates) {
    const auto& library = entry->library;
    std::unique_ptr<LinearKernel> made = guarded(library->name, "a linear kernel factory",
                                                 [&] { return entry->registration.factory(args); });
    if (!made) continue;
    const bool supported = guarded(library->name, "LinearKernel::is_supported", [&] {
      return type == "meta" || made->is_supported(c10::Device(args.device), args.dtype);
    });
    if (!supported) {
      tried += "\n  " + entry->registration.name + " (" + library->name + "): does not support " +
               torch_name(args.dtype) + " on " + args.device;
      continue;
    }
    std::shared_ptr<LinearKernel> kernel(made.release(), [library](LinearKernel* k) { delete k; });
    return OwnedKernel{std::move(kernel), library->name};
  }
  std::string message = "no linear kernel for quant_method '" + quant_method + "' on device '" +
                        args.device + "' (layer '" + args.layer + "', " + torch_name(args.dtype) +
                        ")";
  message += candidates.empty() ? ": none is registered for this device" : ":" + tried;
  throw UnsupportedError(message);
}

std::vector<KernelInfo> PluginHost::kernels() const {
  std::vector<KernelInfo> out;
  for (const auto& k : registry_->kernels())
    out.push_back({k.registration.quant_method, k.registration.name, k.registration.device,
                   k.registration.priority, k.library->name});
  return out;
}

std::string resolve_quant_method(const Value& raw) {
  if (!raw.is_map()) throw ConfigError("a config must be a map of keys", raw.location());
  auto flag = [&](const char* key) {
    const Value* v = raw.find(key);
    return v != nullptr && v->is_bool() && v->as_bool();
  };
  const bool four = flag("load_in_4bit");
  const bool eight = flag("load_in_8bit");
  if (four && eight)
    throw ConfigError("load_in_4bit and load_in_8bit cannot both be true; pick one",
                      raw.find("load_in_8bit")->location(), "load_in_8bit");
  // transformers' AutoQuantizationConfig: these flags select bitsandbytes whatever quant_method
  // says.
  if (four) return "bitsandbytes_4bit";
  if (eight) return "bitsandbytes_8bit";
  const Value* method = raw.find("quant_method");
  if (method != nullptr && method->is_string() && method->as_string() == "bitsandbytes")
    throw ConfigError(
        "bitsandbytes needs load_in_4bit: true or load_in_8bit: true to say which "
        "format to use",
        method->location(), "quant_method");
  if (method == nullptr)
    throw ConfigError("missing; say which method to use, e.g. quant_method: gptq", raw.location(),
                      "quant_method");
  if (!method->is_string())
    throw ConfigError(std::string("must be a string, got ") + method->kind_name(),
                      method->location(), "quant_method");
  const std::string& name = method->as_string();
  if (!is_valid_quant_method(name))
    throw ConfigError("'" + name +
                          "' is not a method name: it must match [a-z0-9_-]+ (a name, "
                          "never a path; set plugin_dirs to load plugins from elsewhere)",
                      method->location(), "quant_method");
  return name;
}

}  // namespace qplug
