#include <filesystem>
#include <map>
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

// Tensors some writers add that carry nothing a model needs (old Llama checkpoints saved the
// rotary inv_freq buffer).
bool is_ignorable(const std::string& name) {
  const std::string suffix = ".rotary_emb.inv_freq";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Value read_model_config(const std::string& folder) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw CheckpointError(folder, "", "not a directory; --model takes a checkpoint folder");
  const std::string path = (std::filesystem::path(folder) / "config.json").string();
  if (!std::filesystem::exists(path, ec))
    throw CheckpointError(path, "", "missing; a checkpoint folder needs a config.json");
  Value config = parse_json(read_text_file(path), path);
  if (!config.is_map()) throw ConfigError("config.json must hold a JSON object", config.location());
  return config;
}

void check_checkpoint_matches(const ModelDescription& model, const CheckpointFiles& files) {
  std::set<std::string> tied_targets;
  for (const auto& t : model.tied_weights)
    tied_targets.insert(t.target);
  std::map<std::string, const ParamInfo*> expected;
  for (const auto& m : model.modules)
    for (const auto& p : m.params)
      expected[m.name + "." + p.name] = &p;

  auto file_of = [&](const std::string& tensor) {
    const SafetensorsFile* f = files.file_of(tensor);
    return f ? f->path() : files.folder();
  };
  for (const auto& [name, param] : expected) {
    const SafetensorsFile* file = files.file_of(name);
    if (file == nullptr) {
      if (tied_targets.count(name)) continue;  // a tied copy is not stored
      throw CheckpointError(files.folder(), name,
                            "missing tensor: the model (" + model.model_type +
                                ", as config.json describes it) needs it, shape " +
                                shape_text(param->shape));
    }
    const SafetensorsEntry& entry = file->at(name);
    if (entry.shape != param->shape)
      throw CheckpointError(file->path(), name,
                            "shape " + shape_text(entry.shape) + " does not match the " +
                                shape_text(param->shape) + " that config.json implies");
    const bool both_float = is_floating(entry.dtype) && is_floating(param->dtype);
    if (!both_float && entry.dtype != param->dtype)
      throw CheckpointError(file->path(), name,
                            std::string("dtype ") + safetensors_name(entry.dtype) +
                                ", but this layer's format stores " +
                                safetensors_name(param->dtype));
  }
  for (const auto& name : files.tensor_names()) {
    if (expected.count(name) || is_ignorable(name)) continue;
    throw CheckpointError(file_of(name), name,
                          "unexpected tensor: no module of the " + model.model_type +
                              " model built from config.json has it (wrong model_type, a "
                              "different layer count, or a quantized checkpoint without its "
                              "quantization_config?)");
  }
}

}  // namespace qplug
