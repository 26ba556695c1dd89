#include "qplug/core/config_file.hpp"

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

namespace qplug {

namespace {

SourceLocation file_location(const std::string& path) {
  return SourceLocation{std::make_shared<const std::string>(path), 0, 0};
}

[[noreturn]] void fail_reading(const std::string& path, int error) {
  throw ConfigError(
      "cannot read the file: " + std::error_code(error, std::generic_category()).message(),
      file_location(path));
}

bool ends_with_json(const std::string& path) {
  static const std::string kSuffix = ".json";
  if (path.size() < kSuffix.size()) return false;
  for (size_t i = 0; i < kSuffix.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[path.size() - kSuffix.size() + i]);
    if (std::tolower(c) != kSuffix[i]) return false;
  }
  return true;
}

// The first character that is neither whitespace nor part of a UTF-8 byte order mark; 0 if none.
char first_significant_char(const std::string& text) {
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  for (; i < text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i]))) return text[i];
  return 0;
}

// A Hugging Face config.json carries its quantization settings in "quantization_config"; a map
// with its own "quant_method" is already a quantization config and is used as it is.
Value unwrap_model_config(Value config) {
  if (config.contains("quant_method")) return config;
  Value* inner = config.find("quantization_config");
  if (inner && inner->is_map()) return std::move(*inner);
  return config;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail_reading(path, EISDIR);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_reading(path, errno);
  std::string text;
  char buffer[1 << 16];
  // Chunked reads work for pipes and /dev/stdin too, where the size is not known up front.
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0)
    text.append(buffer, static_cast<size_t>(in.gcount()));
  if (in.bad()) fail_reading(path, errno);
  return text;
}

Value load_config_file(const std::string& path) {
  const std::string text = read_text_file(path);
  const char first = first_significant_char(text);
  if (first == 0) throw ConfigError("the file is empty", file_location(path));
  const bool is_json = ends_with_json(path) || first == '{';
  Value config = is_json ? parse_json(text, path) : parse_yaml(text, path);
  if (!config.is_map()) {
    SourceLocation where = config.location().known() ? config.location() : file_location(path);
    throw ConfigError(std::string("a config must be a map of keys, got ") + config.kind_name(),
                      std::move(where));
  }
  return unwrap_model_config(std::move(config));
}

}  // namespace qplug
