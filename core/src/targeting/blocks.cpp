// GPTQ-style block discovery, as optimum does it: find the container of the decoder blocks, list
// the blocks, and list the linear layers inside one.
#include <algorithm>
#include <string>
#include <vector>

#include "qplug/core/targeting.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

constexpr const char* kBlockKey = "block_name_to_quantize";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The pattern is a module or an ancestor of one. A dot boundary (not optimum's substring test)
// keeps "h" from matching every name that merely contains the letter.
bool names_container(const ModelDescription& model, const std::string& pattern) {
  const std::string with_dot = pattern + ".";
  return std::any_of(model.modules.begin(), model.modules.end(), [&](const ModuleInfo& m) {
    return m.name == pattern || starts_with(m.name, with_dot);
  });
}

std::vector<std::string> discovered_containers(const ModelDescription& model) {
  std::vector<std::string> found;
  for (const auto& pattern : block_patterns())
    if (names_container(model, pattern)) found.push_back(pattern);
  return found;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string model_label(const ModelDescription& model) {
  return model.model_type.empty() ? "the model" : "the " + model.model_type + " model";
}

}  // namespace

const std::vector<std::string>& block_patterns() {
  static const std::vector<std::string> patterns = {"transformer.h",
                                                    "model.decoder.layers",
                                                    "gpt_neox.layers",
                                                    "model.layers",
                                                    "model.language_model.layers",
                                                    "h",
                                                    "decoder.layers",
                                                    "layers"};
  return patterns;
}

std::string find_block_container(const ModelDescription& model,
                                 const std::optional<std::string>& block_name_to_quantize) {
  if (block_name_to_quantize) {
    if (model.find(*block_name_to_quantize) != nullptr) return *block_name_to_quantize;
    const auto found = discovered_containers(model);
    throw ConfigError("'" + *block_name_to_quantize + "' is not a module of " + model_label(model) +
                          "; block containers found: " + (found.empty() ? "none" : join(found)),
                      {}, kBlockKey);
  }
  const auto found = discovered_containers(model);
  if (found.empty())
    throw ConfigError("no block container found in " + model_label(model) + " (looked for " +
                          join(block_patterns()) +
                          "); set block_name_to_quantize to the module that holds the blocks",
                      {}, kBlockKey);
  return found.front();
}

std::vector<std::string> get_blocks(const ModelDescription& model, const std::string& container) {
  const std::string with_dot = container + ".";
  std::vector<std::string> blocks;
  for (const auto& m : model.modules)
    if (starts_with(m.name, with_dot) && m.name.find('.', with_dot.size()) == std::string::npos)
      blocks.push_back(m.name);
  return blocks;
}

std::vector<std::string> get_layers(const ModelDescription& model, const std::string& prefix) {
  // optimum's default prefix "" means the whole model.
  const std::string with_dot = prefix.empty() ? std::string() : prefix + ".";
  std::vector<std::string> layers;
  for (const auto& m : model.modules)
    if (m.is_linear && starts_with(m.name, with_dot)) layers.push_back(m.name);
  return layers;
}

std::vector<std::string> filter_modules_in_block(const std::vector<std::string>& layers,
                                                 const std::vector<std::string>& modules_in_block) {
  std::vector<std::string> kept;
  for (const auto& layer : layers) {
    const bool listed =
        std::any_of(modules_in_block.begin(), modules_in_block.end(),
                    [&](const std::string& suffix) { return ends_with(layer, suffix); });
    if (listed) kept.push_back(layer);
  }
  return kept;
}

}  // namespace qplug
