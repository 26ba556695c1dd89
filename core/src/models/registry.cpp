// model_type -> architecture.
#include <functional>
#include <map>

#include "models/architectures.hpp"
#include "qplug/core/models.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {

using Builder = std::function<std::unique_ptr<models::TransformerModel>(const Value&, DType,
                                                                        const std::string&)>;

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> table = {
      {"llama", models::build_llama_family},
      {"mistral", models::build_llama_family},
      {"qwen2", models::build_llama_family},
      {"gpt2", models::build_gpt2},
      {"opt", models::build_opt},
  };
  return table;
}

}  // namespace

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& [name, builder] : builders())
    out.push_back(name);
  return out;
}

std::unique_ptr<Model> build_model(const Value& hf_config, const ModelBuildOptions& options) {
  if (!hf_config.is_map())
    throw ConfigError("config.json must hold a JSON object", hf_config.location());
  const Value* type = hf_config.find("model_type");
  if (type == nullptr || !type->is_string())
    throw ConfigError("missing or not a string; config.json must say which architecture it is",
                      hf_config.location(), "model_type");
  auto it = builders().find(type->as_string());
  if (it == builders().end()) {
    std::string supported;
    for (const auto& name : supported_model_types())
      supported += (supported.empty() ? "" : ", ") + name;
    throw UnsupportedError(type->location().str() + ": model_type '" + type->as_string() +
                           "' is not supported; supported: " + supported);
  }
  DType dtype = DType::F32;
  if (options.dtype) {
    dtype = *options.dtype;
  } else if (const Value* torch_dtype = hf_config.find("torch_dtype");
             torch_dtype != nullptr && torch_dtype->is_string()) {
    auto parsed = dtype_from_torch_name(torch_dtype->as_string());
    if (!parsed || !is_floating(*parsed))
      throw ConfigError("'" + torch_dtype->as_string() + "' is not a floating-point dtype",
                        torch_dtype->location(), "torch_dtype");
    dtype = *parsed;
  }
  if (!is_floating(dtype) || dtype == DType::F64)
    throw UnsupportedError(std::string("models run in float32, float16 or bfloat16, not ") +
                           torch_name(dtype));
  return it->second(hf_config, dtype, options.device);
}

}  // namespace qplug
