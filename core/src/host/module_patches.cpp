#include "host/module_patches.hpp"

#include <torch/nn/module.h>

#include "host/registry.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/guard.hpp"
#include "qplug/sdk/model.hpp"

namespace qplug {

namespace {

int patch_children(torch::nn::Module& parent, const std::string& prefix,
                   const std::vector<const PatchEntry*>& patches, const Value& hf_config) {
  int replaced = 0;
  for (const auto& item : parent.named_children()) {
    const std::string child_name = item.key();
    std::shared_ptr<torch::nn::Module> child = item.value();
    const std::string full = prefix.empty() ? child_name : prefix + "." + child_name;
    const PatchEntry* match = nullptr;
    for (const PatchEntry* p : patches)
      if (p->patch.module_type == child->name()) match = p;
    if (match == nullptr) {
      replaced += patch_children(*child, full, patches, hf_config);
      continue;
    }
    std::shared_ptr<torch::nn::Module> replacement =
        guarded(match->library->name, "a module patch factory",
                [&] { return match->patch.factory(child, hf_config); });
    if (!replacement)
      throw PluginError(match->library->name, "the module patch for '" + match->patch.module_type +
                                                  "' returned nothing for '" + full + "'");
    parent.replace_module(child_name, replacement);
    ++replaced;
  }
  return replaced;
}

}  // namespace

int apply_module_patches(Model& model, const std::string& quant_method, const Registry& registry) {
  const auto patches = registry.patches_for(quant_method);
  if (patches.empty()) return 0;
  return patch_children(model.root(), "", patches, model.hf_config());
}

}  // namespace qplug
