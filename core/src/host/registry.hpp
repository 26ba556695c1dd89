// The host's registry of what plugins registered, each entry with the plugin (and library) that
// owns it. Shared by the PluginHost and every handle it gave out, so handles outlive the host.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/plugin_library.hpp"
#include "qplug/sdk/module_patch.hpp"
#include "qplug/sdk/registrar.hpp"

namespace qplug {

struct QuantizerEntry {
  QuantizerRegistration registration;
  std::shared_ptr<PluginLibrary> library;
};

struct KernelEntry {
  LinearKernelRegistration registration;
  std::shared_ptr<PluginLibrary> library;
};

struct PatchEntry {
  ModulePatch patch;
  std::shared_ptr<PluginLibrary> library;
};

// Everything one plugin's register function added, before it is accepted.
struct Registrations {
  std::vector<QuantizerRegistration> quantizers;
  std::vector<LinearKernelRegistration> kernels;
  std::vector<ModulePatch> patches;
};

class Registry {
 public:
  // Checks one plugin's registrations (complete, well-formed, no clash with what is registered)
  // and adds all of them, or none: throws PluginLoadError (MissingFactory, BadDescriptor,
  // Duplicate). A clash on a quant_method also marks the method as conflicted, so asking for it
  // names both files instead of silently picking one.
  void add_plugin(const std::shared_ptr<PluginLibrary>& library, Registrations registrations);

  const QuantizerEntry* quantizer(const std::string& quant_method) const;
  // Non-empty when two plugins provide the method: the error to report.
  std::string conflict(const std::string& quant_method) const;
  std::vector<std::string> quant_methods() const;  // sorted, conflicted ones included

  // Kernels for a method on a device type ("cpu", "cuda"), highest priority first.
  std::vector<const KernelEntry*> kernels_for(const std::string& quant_method,
                                              const std::string& device_type) const;
  const std::vector<KernelEntry>& kernels() const { return kernels_; }
  std::vector<const PatchEntry*> patches_for(const std::string& quant_method) const;
  const std::vector<PatchEntry>& patches() const { return patches_; }

 private:
  void check(const PluginLibrary& library, const Registrations& registrations) const;

  std::map<std::string, QuantizerEntry> quantizers_;
  std::map<std::string, std::string> conflicts_;
  std::vector<KernelEntry> kernels_;
  std::vector<PatchEntry> patches_;
};

}  // namespace qplug
