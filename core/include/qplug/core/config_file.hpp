// Reading configuration files: YAML or JSON into a qplug::Value whose every node knows its file,
// line and column, so validation errors can point at the exact key.
#pragma once

#include <string>
#include <string_view>

#include "qplug/sdk/value.hpp"

namespace qplug {

// Parses YAML text (yaml-cpp). Scalars are typed as YAML 1.2's core schema does: true/false,
// null/~/empty, integers (decimal, 0x, 0o), floats (incl. .inf/.nan), anything else a string;
// quoted scalars are always strings. Anchors and aliases are resolved; duplicate keys, tags other
// than the core ones and non-string keys are errors. Throws ConfigError with line and column.
Value parse_yaml(std::string_view text, const std::string& source_name);

// Reads a config file: JSON when it ends in ".json" or its first non-blank character is '{',
// YAML otherwise. A Hugging Face config.json holding a "quantization_config" object yields that
// object (so a model's own config can be passed as the quantization config). Throws ConfigError
// naming the file when it cannot be read or parsed.
Value load_config_file(const std::string& path);

// Reads a whole file into memory; throws ConfigError naming the file on failure.
std::string read_text_file(const std::string& path);

}  // namespace qplug
