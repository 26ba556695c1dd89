#include "host/registry.hpp"

#include <algorithm>
#include <set>

#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {

[[noreturn]] void reject(PluginLoadReason reason, const PluginLibrary& library,
                         const std::string& message) {
  throw PluginLoadError(reason, library.path, message);
}

std::string owner_of(const PluginLibrary& library) {
  return "plugin '" + library.name + "' (" + library.path + ")";
}

bool is_known_device(const std::string& device) {
  return device == "cpu" || device == "cuda";
}

}  // namespace

void Registry::check(const PluginLibrary& library, const Registrations& registrations) const {
  std::set<std::string> methods_in_plugin;
  for (const auto& q : registrations.quantizers) {
    if (!is_valid_quant_method(q.quant_method))
      reject(PluginLoadReason::BadDescriptor, library,
             owner_of(library) + " registers quant_method '" + q.quant_method +
                 "', which is not a valid name ([a-z0-9_-]+)");
    if (!q.factory)
      reject(PluginLoadReason::MissingFactory, library,
             owner_of(library) + " registers quant_method '" + q.quant_method +
                 "' without a quantizer factory; set QuantizerRegistration::factory");
    if (q.schema.quant_method() != q.quant_method)
      reject(PluginLoadReason::BadDescriptor, library,
             owner_of(library) + " registers quant_method '" + q.quant_method +
                 "' with a config schema for '" + q.schema.quant_method() +
                 "'; construct the ConfigSchema with the same name");
    if (!methods_in_plugin.insert(q.quant_method).second)
      reject(PluginLoadReason::Duplicate, library,
             owner_of(library) + " registers quant_method '" + q.quant_method + "' twice");
    if (const QuantizerEntry* existing = quantizer(q.quant_method))
      reject(PluginLoadReason::Duplicate, library,
             "quant_method '" + q.quant_method + "' is provided by both " +
                 owner_of(*existing->library) + " and " + owner_of(library) +
                 "; remove one of the two files or take its directory off the plugin search path");
  }
  std::set<std::string> kernel_names;
  for (const auto& k : registrations.kernels) {
    if (!k.factory)
      reject(PluginLoadReason::MissingFactory, library,
             owner_of(library) + " registers linear kernel '" + k.name + "' for '" +
                 k.quant_method + "' without a factory; set LinearKernelRegistration::factory");
    if (k.name.empty() || !is_valid_quant_method(k.quant_method) || !is_known_device(k.device))
      reject(PluginLoadReason::BadDescriptor, library,
             owner_of(library) + " registers a linear kernel with name '" + k.name +
                 "', quant_method '" + k.quant_method + "' and device '" + k.device +
                 "'; it needs a name, a valid quant_method and device \"cpu\" or \"cuda\"");
    if (!kernel_names.insert(k.name).second)
      reject(PluginLoadReason::Duplicate, library,
             owner_of(library) + " registers linear kernel '" + k.name + "' twice");
  }
  for (const auto& p : registrations.patches) {
    if (!p.factory)
      reject(PluginLoadReason::MissingFactory, library,
             owner_of(library) + " registers a module patch for '" + p.module_type +
                 "' without a factory; set ModulePatch::factory");
    if (p.module_type.empty() || p.quant_methods.empty())
      reject(PluginLoadReason::BadDescriptor, library,
             owner_of(library) + " registers a module patch without a module type or methods");
    for (const auto& existing : patches_) {
      if (existing.patch.module_type != p.module_type) continue;
      for (const auto& m : p.quant_methods) {
        const auto& theirs = existing.patch.quant_methods;
        if (std::find(theirs.begin(), theirs.end(), m) != theirs.end())
          reject(PluginLoadReason::Duplicate, library,
                 "module patch for '" + p.module_type + "' under quant_method '" + m +
                     "' is provided by both " + owner_of(*existing.library) + " and " +
                     owner_of(library) + "; remove one of the two files");
      }
    }
  }
}

void Registry::add_plugin(const std::shared_ptr<PluginLibrary>& library,
                          Registrations registrations) {
  try {
    check(*library, registrations);
  } catch (const PluginLoadError& e) {
    if (e.reason() == PluginLoadReason::Duplicate) {
      // A method two plugins provide must not quietly resolve to the first one.
      for (const auto& q : registrations.quantizers)
        if (quantizer(q.quant_method) != nullptr) conflicts_[q.quant_method] = e.what();
    }
    throw;
  }
  for (auto& q : registrations.quantizers) {
    const std::string method = q.quant_method;
    quantizers_.emplace(method, QuantizerEntry{std::move(q), library});
  }
  for (auto& k : registrations.kernels)
    kernels_.push_back(KernelEntry{std::move(k), library});
  for (auto& p : registrations.patches)
    patches_.push_back(PatchEntry{std::move(p), library});
}

const QuantizerEntry* Registry::quantizer(const std::string& quant_method) const {
  auto it = quantizers_.find(quant_method);
  return it == quantizers_.end() ? nullptr : &it->second;
}

std::string Registry::conflict(const std::string& quant_method) const {
  auto it = conflicts_.find(quant_method);
  return it == conflicts_.end() ? std::string() : it->second;
}

std::vector<std::string> Registry::quant_methods() const {
  std::set<std::string> names;
  for (const auto& [name, entry] : quantizers_)
    names.insert(name);
  for (const auto& [name, message] : conflicts_)
    names.insert(name);
  return {names.begin(), names.end()};
}

std::vector<const KernelEntry*> Registry::kernels_for(const std::string& quant_method,
                                                      const std::string& device_type) const {
  std::vector<const KernelEntry*> out;
  for (const auto& k : kernels_)
    if (k.registration.quant_method == quant_method && k.registration.device == device_type)
      out.push_back(&k);
  std::stable_sort(out.begin(), out.end(), [](const KernelEntry* a, const KernelEntry* b) {
    return a->registration.priority > b->registration.priority;
  });
  return out;
}

std::vector<const PatchEntry*> Registry::patches_for(const std::string& quant_method) const {
  std::vector<const PatchEntry*> out;
  for (const auto& p : patches_) {
    const auto& methods = p.patch.quant_methods;
    if (std::find(methods.begin(), methods.end(), quant_method) != methods.end()) out.push_back(&p);
  }
  return out;
}

}  // namespace qplug
