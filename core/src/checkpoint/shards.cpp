// Sharded checkpoints the way transformers writes and reads them: the split of
// huggingface_hub's split_state_dict_into_shards_factory, sizes as convert_file_size_to_int
// parses them, and model.safetensors.index.json as save_pretrained writes it.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string shard_name(size_t index, size_t count) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buffer;
}

// ---- parse_size --------------------------------------------------------------------------------

struct SizeUnit {
  const char* suffix;  // compared case-insensitively, as upstream compares size.upper()
  uint64_t multiplier;
  bool decimal;  // a decimal unit ending in a lower-case "b" means bits
};

// In upstream's order: the binary units, then the decimal ones.
constexpr SizeUnit kUnits[] = {
    {"GIB", uint64_t{1} << 30, false}, {"MIB", uint64_t{1} << 20, false},
    {"KIB", uint64_t{1} << 10, false}, {"GB", 1'000'000'000, true},
    {"MB", 1'000'000, true},           {"KB", 1'000, true},
};

[[noreturn]] void bad_size(const std::string& text, const std::string& why) {
  throw ConfigError("size '" + text + "' " + why +
                    ": use a number of bytes or digits followed by a unit, e.g. '5GB' (5*10^9), "
                    "'500MB', '2GiB' (2*2^30); a lower-case 'b' as in '5Gb' means bits");
}

bool ends_with_ci(const std::string& text, const std::string& suffix) {
  if (text.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[text.size() - suffix.size() + i]);
    if (std::toupper(c) != suffix[i]) return false;
  }
  return true;
}

// Python's int() strips surrounding whitespace ("5 GB" works upstream); signs, underscores and
// fractions are refused here because a negative or fractional size is never what was meant.
uint64_t parse_count(const std::string& text, std::string digits) {
  const auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!digits.empty() && space(digits.back()))
    digits.pop_back();
  digits.erase(digits.begin(), std::find_if_not(digits.begin(), digits.end(), space));
  if (digits.empty()) bad_size(text, "has no number");
  uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') bad_size(text, "is not a whole number");
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) bad_size(text, "is too large");
    value = value * 10 + digit;
  }
  return value;
}

// ---- write_shard_index -------------------------------------------------------------------------

void write_text_file(const std::string& path, const std::string& content) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    throw CheckpointError(path, "", std::string("cannot create: ") + std::strerror(errno));
  }
  const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size();
  const int write_error = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    const int error = !written ? write_error : errno;
    std::remove(path.c_str());
    throw CheckpointError(path, "", std::string("cannot write: ") + std::strerror(error));
  }
}

// ---- CheckpointFiles ---------------------------------------------------------------------------

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path, "", std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw CheckpointError(path, "", "cannot read");
  return text.str();
}

// Shard file name -> the tensors the index assigns to it, in index order.
std::map<std::string, std::vector<std::string>> read_index(const std::string& path) {
  Value root;
  try {
    root = parse_json(read_text_file(path), path);
  } catch (const ConfigError& e) {
    const SourceLocation& at = e.where();
    const std::string where = at.line > 0 ? " (line " + std::to_string(at.line) + ", column " +
                                                std::to_string(at.column) + ")"
                                          : "";
    throw CheckpointError(path, "", "not valid JSON" + where + ": " + e.detail());
  }
  const Value* weight_map = root.is_map() ? root.find("weight_map") : nullptr;
  if (weight_map == nullptr || !weight_map->is_map()) {
    throw CheckpointError(path, "", "has no \"weight_map\" object mapping tensor names to files");
  }
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [tensor, file] : weight_map->as_map()) {
    if (!file.is_string()) {
      throw CheckpointError(path, tensor,
                            "weight_map value must be a file name, got " + file.brief());
    }
    const std::string& name = file.as_string();
    // A shard is a file beside the index; anything with a path in it could read outside the folder.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      throw CheckpointError(path, tensor,
                            "weight_map names '" + name + "', which is not a file name");
    }
    shards[name].push_back(tensor);
  }
  return shards;
}

std::shared_ptr<SafetensorsFile> open_file(const std::string& path, bool header_only) {
  return header_only ? SafetensorsFile::open_header_only(path) : SafetensorsFile::open(path);
}

// The shard must hold exactly what the index says: a tensor the index promises but the shard lacks
// would load as garbage or not at all, and an unlisted one would be silently ignored by loaders.
void check_shard_contents(const SafetensorsFile& shard, const std::vector<std::string>& listed,
                          const std::string& index_path) {
  const std::set<std::string> expected(listed.begin(), listed.end());
  for (const std::string& tensor : listed) {
    if (shard.find(tensor) == nullptr) {
      throw CheckpointError(shard.path(), tensor,
                            "listed for this shard in " + index_path + " but not in the file");
    }
  }
  for (const SafetensorsEntry& entry : shard.entries()) {
    if (expected.count(entry.name) == 0) {
      throw CheckpointError(shard.path(), entry.name,
                            "in the file but not listed for this shard in " + index_path);
    }
  }
}

}  // namespace

ShardPlan plan_shards(const std::vector<std::pair<std::string, uint64_t>>& tensors,
                      uint64_t max_shard_bytes) {
  std::vector<std::vector<std::string>> shards;
  std::vector<std::string> current;
  uint64_t current_bytes = 0;
  for (const auto& [name, bytes] : tensors) {
    // Upstream gives an oversized tensor a shard of its own right away, without closing the shard
    // being filled, so it lands before the smaller tensors that came ahead of it.
    if (bytes > max_shard_bytes) {
      shards.push_back({name});
      continue;
    }
    if (current_bytes + bytes > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(name);
    current_bytes += bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));

  ShardPlan plan;
  // Upstream writes no weights file at all for an empty state dict; one empty model.safetensors
  // keeps the output a loadable checkpoint.
  if (shards.size() <= 1) {
    plan.shards.emplace_back(kSingleFile, shards.empty() ? std::vector<std::string>{} : shards[0]);
    return plan;
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    plan.shards.emplace_back(shard_name(i, shards.size()), std::move(shards[i]));
  }
  return plan;
}

uint64_t parse_size(const std::string& text) {
  for (const SizeUnit& unit : kUnits) {
    if (!ends_with_ci(text, unit.suffix)) continue;
    const size_t suffix_len = std::strlen(unit.suffix);
    const uint64_t count = parse_count(text, text.substr(0, text.size() - suffix_len));
    if (count > std::numeric_limits<uint64_t>::max() / unit.multiplier) {
      bad_size(text, "is too large");
    }
    const uint64_t bytes = count * unit.multiplier;
    return unit.decimal && text.back() == 'b' ? bytes / 8 : bytes;
  }
  return parse_count(text, text);
}

void write_shard_index(const std::string& path, uint64_t total_size,
                       const std::vector<std::pair<std::string, std::string>>& weight_map) {
  if (total_size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw CheckpointError(path, "", "total_size " + std::to_string(total_size) + " is too large");
  }
  // A set for the duplicate check: Value's map lookup is linear, and MoE checkpoints list tens of
  // thousands of tensors.
  std::set<std::string> seen;
  Value map = Value::map();
  for (const auto& [tensor, file] : weight_map) {
    if (!seen.insert(tensor).second) {
      throw CheckpointError(path, tensor, "listed twice in the weight map");
    }
    map.as_map().emplace_back(tensor, Value(file));
  }
  Value metadata = Value::map();
  metadata.set("total_size", Value(static_cast<int64_t>(total_size)));
  Value index = Value::map();
  index.set("metadata", std::move(metadata));
  index.set("weight_map", std::move(map));
  // save_pretrained: json.dumps(index, indent=2, sort_keys=True) + "\n".
  JsonWriteOptions options;
  options.indent = 2;
  options.sort_keys = true;
  write_text_file(path, to_json(index, options) + "\n");
}

CheckpointFiles CheckpointFiles::open(const std::string& folder, bool header_only) {
  namespace fs = std::filesystem;
  CheckpointFiles out;
  out.folder_ = folder;
  const fs::path dir(folder);
  const std::string single = (dir / kSingleFile).string();
  const std::string index = (dir / kIndexFile).string();
  std::error_code ec;
  // transformers' from_pretrained looks for model.safetensors before the index, so a folder with
  // both loads the single file there; we load the same weights it would.
  if (fs::exists(single, ec)) {
    out.files_.push_back(open_file(single, header_only));
  } else if (fs::exists(index, ec)) {
    for (const auto& [name, tensors] : read_index(index)) {
      const std::string shard = (dir / name).string();
      if (!fs::exists(shard, ec)) {
        throw CheckpointError(shard, "", "shard listed in " + index + " is missing");
      }
      out.files_.push_back(open_file(shard, header_only));
      check_shard_contents(*out.files_.back(), tensors, index);
    }
  } else {
    throw CheckpointError(folder, "",
                          "no model.safetensors or model.safetensors.index.json in " + folder);
  }
  for (size_t i = 0; i < out.files_.size(); ++i) {
    for (const SafetensorsEntry& entry : out.files_[i]->entries())
      out.owner_[entry.name] = i;
  }
  return out;
}

const SafetensorsFile* CheckpointFiles::file_of(const std::string& tensor) const {
  auto it = owner_.find(tensor);
  return it == owner_.end() ? nullptr : files_[it->second].get();
}

std::vector<std::string> CheckpointFiles::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(owner_.size());
  for (const auto& entry : owner_)
    names.push_back(entry.first);
  return names;
}

uint64_t CheckpointFiles::total_bytes() const {
  uint64_t total = 0;
  for (const auto& file : files_) {
    for (const SafetensorsEntry& entry : file->entries())
      total += entry.nbytes();
  }
  return total;
}

}  // namespace qplug
