#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "qplug/core/checkpoint.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors that carry nothing a model needs: the architecture's own list, and the rotary inv_freq
// buffer old Llama checkpoints saved.
class IgnoreList {
 public:
  explicit IgnoreList(const ModelDescription& model) {
    for (const auto& pattern : model.ignore_on_load)
      patterns_.emplace_back(pattern);
  }
  bool ignores(const std::string& name) const {
    if (ends_with(name, ".rotary_emb.inv_freq")) return true;
    for (const auto& p : patterns_)
      if (std::regex_search(name, p)) return true;
    return false;
  }

 private:
  std::vector<std::regex> patterns_;
};

// A spec dimension of -1 accepts any size (e.g. the length of a bitsandbytes quant-state JSON).
bool shape_matches(const std::vector<int64_t>& stored, const std::vector<int64_t>& wanted) {
  if (stored.size() != wanted.size()) return false;
  for (size_t i = 0; i < stored.size(); ++i)
    if (wanted[i] != -1 && wanted[i] != stored[i]) return false;
  return true;
}

}  // namespace

bool stores_bytes_through_view(const SafetensorsEntry& entry, const std::vector<int64_t>& shape,
                               DType dtype) {
  if (dtype != DType::U8 || entry.dtype == DType::U8 || entry.dtype == DType::Bool) return false;
  if (shape.empty() || entry.shape.size() != shape.size()) return false;
  for (size_t i = 1; i < shape.size(); ++i)
    if (entry.shape[i] != shape[i]) return false;
  return shape[0] == -1 || entry.shape[0] * dtype_size(entry.dtype) == shape[0];
}

Value read_model_config(const std::string& folder) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw CheckpointError(folder, "", "not a directory; a model is a checkpoint folder");
  const std::string path = (std::filesystem::path(folder) / "config.json").string();
  if (!std::filesystem::exists(path, ec))
    throw CheckpointError(path, "", "missing; a checkpoint folder needs a config.json");
  Value config = parse_json(read_text_file(path), path);
  if (!config.is_map()) throw ConfigError("config.json must hold a JSON object", config.location());
  return config;
}

std::vector<ExpectedTensor> expected_tensors(const ModelDescription& model) {
  std::set<std::string> tied_targets;
  for (const auto& t : model.tied_weights)
    tied_targets.insert(t.target);
  std::vector<ExpectedTensor> out;
  for (const auto& m : model.modules)
    for (const auto& p : m.params) {
      const std::string full = m.name + "." + p.name;
      out.push_back({full, p.shape, p.dtype, tied_targets.count(full) > 0});
    }
  return out;
}

std::map<std::string, std::string> map_checkpoint_tensors(
    const std::vector<ExpectedTensor>& expected, const ModelDescription& model,
    const CheckpointFiles& files) {
  std::map<std::string, const ExpectedTensor*> by_name;
  for (const auto& e : expected)
    by_name[e.name] = &e;
  const IgnoreList ignore(model);
  const std::string prefix = model.base_model_prefix.empty() ? "" : model.base_model_prefix + ".";

  std::map<std::string, std::string> mapping;  // checkpoint name -> model name
  std::set<std::string> filled;
  for (const auto& name : files.tensor_names()) {
    const SafetensorsFile* file = files.file_of(name);
    std::string target = name;
    if (!by_name.count(target) && !prefix.empty() && by_name.count(prefix + name))
      target = prefix + name;
    if (!by_name.count(target)) {
      if (ignore.ignores(name)) continue;
      throw CheckpointError(file->path(), name,
                            "unexpected tensor: no module of the " + model.model_type +
                                " model that config.json describes has it (a different layer "
                                "count or model_type, or a quantized checkpoint without its "
                                "quantization_config?)");
    }
    if (!filled.insert(target).second)
      throw CheckpointError(file->path(), name,
                            "holds '" + target +
                                "', which another tensor of the checkpoint "
                                "already fills (with and without the '" +
                                model.base_model_prefix + "' prefix)");
    const ExpectedTensor& want = *by_name[target];
    const SafetensorsEntry& entry = file->at(name);
    if (stores_bytes_through_view(entry, want.shape, want.dtype)) {
      mapping[name] = target;
      continue;
    }
    if (!shape_matches(entry.shape, want.shape))
      throw CheckpointError(file->path(), name,
                            "shape " + shape_text(entry.shape) + " does not match the " +
                                shape_text(want.shape) + " the model expects (config.json)");
    const bool both_float = is_floating(entry.dtype) && is_floating(want.dtype);
    if (!both_float && entry.dtype != want.dtype)
      throw CheckpointError(file->path(), name,
                            std::string("dtype ") + safetensors_name(entry.dtype) +
                                ", but the layer's format stores " + safetensors_name(want.dtype));
    mapping[name] = target;
  }
  for (const auto& e : expected) {
    if (e.optional || filled.count(e.name)) continue;
    throw CheckpointError(files.folder(), e.name,
                          "missing tensor: the " + model.model_type +
                              " model that config.json describes needs it (shape " +
                              shape_text(e.shape) + ", " + safetensors_name(e.dtype) + ")");
  }
  return mapping;
}

}  // namespace qplug
