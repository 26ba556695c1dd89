// transformers' default skip list (get_keys_to_not_convert) and its merge with the user's list
// (get_modules_to_not_convert), in a stable order where transformers uses a set.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "qplug/core/targeting.hpp"

namespace qplug {
namespace {

bool holds_param(const ModuleInfo& module, const std::string& local) {
  return std::any_of(module.params.begin(), module.params.end(),
                     [&](const ParamInfo& p) { return p.name == local; });
}

// The module a full parameter name belongs to. Local names may contain dots
// ("lm_head.weight.absmax" once quantized), so the model is asked first; otherwise the last
// component is dropped, as transformers strips ".weight"/".bias". "" for a root parameter.
std::string owning_module(const ModelDescription& model, const std::string& param) {
  for (auto dot = param.rfind('.'); dot != std::string::npos && dot > 0;
       dot = param.rfind('.', dot - 1)) {
    const ModuleInfo* module = model.find(param.substr(0, dot));
    if (module != nullptr && holds_param(*module, param.substr(dot + 1))) return module->name;
  }
  const auto dot = param.rfind('.');
  return dot == std::string::npos ? std::string() : param.substr(0, dot);
}

void add_unique(std::vector<DefaultSkip>& skips, std::string module, const char* reason) {
  if (module.empty()) return;
  for (const auto& s : skips)
    if (s.module == module) return;
  skips.push_back({std::move(module), reason});
}

void add_unique(std::vector<std::string>& names, const std::string& name) {
  if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
}

}  // namespace

std::vector<DefaultSkip> default_skips(const ModelDescription& model) {
  std::vector<DefaultSkip> skips;
  for (const auto& tied : model.tied_weights) {
    add_unique(skips, owning_module(model, tied.target), "tied weight");
    add_unique(skips, owning_module(model, tied.source), "tied weight");
  }
  // The last parameter is usually the head (or the final norm when the head is tied), which
  // transformers keeps in full precision for numerical stability.
  if (!model.parameter_order.empty())
    add_unique(skips, owning_module(model, model.parameter_order.back()), "last parameter");
  add_unique(skips, model.output_embedding, "output embedding");
  return skips;
}

std::vector<std::string> get_keys_to_not_convert(const ModelDescription& model) {
  std::vector<std::string> names;
  for (auto& skip : default_skips(model))
    names.push_back(std::move(skip.module));
  return names;
}

std::vector<std::string> get_modules_to_not_convert(
    const ModelDescription& model, const std::optional<std::vector<std::string>>& skip_modules,
    const std::vector<std::string>& keep_in_fp32, bool add_default_skips) {
  std::vector<std::string> names;
  // As in transformers: a user list replaces the defaults unless add_default_skips asks for both.
  if (!skip_modules || add_default_skips)
    for (const auto& name : get_keys_to_not_convert(model))
      add_unique(names, name);
  if (skip_modules)
    for (const auto& name : *skip_modules)
      add_unique(names, name);
  for (const auto& name : keep_in_fp32)
    add_unique(names, name);
  return names;
}

}  // namespace qplug
