// SafetensorsFile: reads and validates a safetensors header before any tensor byte is handed out.
//
// The checks follow the safetensors crate's own validation (header <= 100 MB, offsets contiguous
// from 0, data area fully used), but every failure names the file and tensor and says what the
// numbers were, so a corrupt or hand-edited checkpoint can be diagnosed from the message alone.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";
constexpr DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                                DType::I32, DType::I16, DType::I8,  DType::U8,   DType::Bool};

uint64_t read_le64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i)
    value = (value << 8) | bytes[i];
  return value;
}

std::string known_dtypes() {
  std::string out;
  for (DType dtype : kAllDTypes)
    out += (out.empty() ? "" : ", ") + std::string(safetensors_name(dtype));
  return out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string offsets_text(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
}

// The 8-byte prefix: the header length must be sane and fit in the file.
uint64_t checked_header_length(const std::string& path, const uint8_t* prefix, uint64_t file_size) {
  const uint64_t header_len = read_le64(prefix);
  if (header_len > kMaxHeaderBytes) {
    throw CheckpointError(path, "",
                          "header length " + std::to_string(header_len) + " exceeds the limit of " +
                              std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_len > file_size - 8) {
    throw CheckpointError(path, "",
                          "header length " + std::to_string(header_len) +
                              " runs past the end of the file (" + std::to_string(file_size) +
                              " bytes, " + std::to_string(file_size - 8) +
                              " after the length prefix)");
  }
  return header_len;
}

void check_not_truncated(const std::string& path, uint64_t file_size) {
  if (file_size < 8) {
    throw CheckpointError(path, "",
                          "truncated: " + std::to_string(file_size) +
                              " bytes, too short for the 8-byte header length");
  }
}

Value parse_header_json(const std::string& path, const uint8_t* header, uint64_t header_len) {
  std::string_view text(reinterpret_cast<const char*>(header), header_len);
  try {
    return parse_json(text, path);
  } catch (const ConfigError& e) {
    std::string at;
    if (e.where().line > 0) {
      at = " (line " + std::to_string(e.where().line) + ", column " +
           std::to_string(e.where().column) + ")";
    }
    throw CheckpointError(path, "", "header is not valid JSON" + at + ": " + e.detail());
  }
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const Value& value) {
  if (!value.is_map()) {
    throw CheckpointError(
        path, "",
        "__metadata__ must be a map of strings to strings, got " + std::string(value.kind_name()));
  }
  std::map<std::string, std::string> out;
  for (const auto& [key, item] : value.as_map()) {
    if (!item.is_string()) {
      throw CheckpointError(
          path, "", "__metadata__ value of '" + key + "' must be a string, got " + item.brief());
    }
    out[key] = item.as_string();
  }
  return out;
}

// Exactly the three keys the format defines: a typo or an extra key means a writer we do not
// understand, and guessing would risk reading the wrong bytes.
void check_entry_keys(const std::string& path, const std::string& name, const Value& value) {
  if (!value.is_map()) {
    throw CheckpointError(
        path, name,
        "entry must be an object with dtype, shape and data_offsets, got " + value.brief());
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key))
      throw CheckpointError(path, name, std::string("missing '") + key + "'");
  }
  for (const auto& entry : value.as_map()) {
    const std::string& key = entry.first;
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      throw CheckpointError(path, name,
                            "unexpected key '" + key + "' (allowed: dtype, shape, data_offsets)");
    }
  }
}

DType parse_dtype(const std::string& path, const std::string& name, const Value& value) {
  std::optional<DType> dtype;
  if (value.is_string()) dtype = dtype_from_safetensors_name(value.as_string());
  if (!dtype) {
    throw CheckpointError(path, name,
                          "unknown dtype " + value.brief() + " (known: " + known_dtypes() + ")");
  }
  return *dtype;
}

std::vector<int64_t> parse_shape(const std::string& path, const std::string& name,
                                 const Value& value) {
  const char* wanted = "shape must be a list of non-negative integers, got ";
  if (!value.is_list()) throw CheckpointError(path, name, wanted + value.brief());
  std::vector<int64_t> shape;
  for (const Value& dim : value.as_list()) {
    if (!dim.is_int() || dim.as_int() < 0)
      throw CheckpointError(path, name, wanted + value.brief());
    shape.push_back(dim.as_int());
  }
  return shape;
}

// numel x dtype size in bytes, or a CheckpointError when that does not fit in 64 bits (a crafted
// shape must not wrap around into a small, plausible size).
uint64_t shape_bytes(const std::string& path, const std::string& name,
                     const std::vector<int64_t>& shape, DType dtype) {
  uint64_t numel = 1;
  for (int64_t dim : shape) {
    const uint64_t d = static_cast<uint64_t>(dim);
    if (d != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / d) {
      throw CheckpointError(
          path, name, "shape " + shape_text(shape) + " has more elements than fit in 64 bits");
    }
    numel *= d;
  }
  const uint64_t size = static_cast<uint64_t>(dtype_size(dtype));
  if (numel > std::numeric_limits<uint64_t>::max() / size) {
    throw CheckpointError(path, name,
                          "shape " + shape_text(shape) + " x " + safetensors_name(dtype) +
                              " is more bytes than fit in 64 bits");
  }
  return numel * size;
}

std::pair<uint64_t, uint64_t> parse_offsets(const std::string& path, const std::string& name,
                                            const Value& value) {
  const std::string wanted =
      "data_offsets must be two non-negative integers [begin, end], got " + value.brief();
  if (!value.is_list() || value.size() != 2) throw CheckpointError(path, name, wanted);
  const Value& begin = value.as_list()[0];
  const Value& end = value.as_list()[1];
  if (!begin.is_int() || !end.is_int() || begin.as_int() < 0 || end.as_int() < 0) {
    throw CheckpointError(path, name, wanted);
  }
  if (begin.as_int() > end.as_int()) {
    throw CheckpointError(path, name, "data_offsets " + value.brief() + " end before they begin");
  }
  return {static_cast<uint64_t>(begin.as_int()), static_cast<uint64_t>(end.as_int())};
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const Value& value,
                             uint64_t data_size) {
  check_entry_keys(path, name, value);
  SafetensorsEntry entry;
  entry.name = name;
  entry.dtype = parse_dtype(path, name, value.at("dtype"));
  entry.shape = parse_shape(path, name, value.at("shape"));
  const uint64_t expected = shape_bytes(path, name, entry.shape, entry.dtype);
  std::tie(entry.begin, entry.end) = parse_offsets(path, name, value.at("data_offsets"));
  if (entry.end - entry.begin != expected) {
    throw CheckpointError(path, name,
                          "shape " + shape_text(entry.shape) + " x " +
                              safetensors_name(entry.dtype) + " is " + std::to_string(expected) +
                              " bytes but data_offsets span " +
                              std::to_string(entry.end - entry.begin));
  }
  if (entry.end > data_size) {
    throw CheckpointError(path, name,
                          "data_offsets " + offsets_text(entry.begin, entry.end) +
                              " lie beyond the data area of " + std::to_string(data_size) +
                              " bytes");
  }
  return entry;
}

// Sorted by offset, the tensors must tile [0, data_size) exactly: no overlap (two tensors sharing
// bytes), no gap (bytes nobody owns, a sign of a broken writer), nothing left over at the end.
void check_layout(const std::string& path, std::vector<SafetensorsEntry>& entries,
                  uint64_t data_size) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t expected = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const SafetensorsEntry& entry : entries) {
    const std::string where = "data_offsets " + offsets_text(entry.begin, entry.end);
    if (entry.begin < expected) {
      throw CheckpointError(path, entry.name,
                            where + " overlap tensor '" + previous->name + "' " +
                                offsets_text(previous->begin, previous->end));
    }
    if (entry.begin > expected) {
      const std::string after =
          previous ? "the end of tensor '" + previous->name + "' at " + std::to_string(expected)
                   : "the start of the data area (the first tensor must begin at 0)";
      throw CheckpointError(path, entry.name,
                            where + " leave a gap of " + std::to_string(entry.begin - expected) +
                                " bytes after " + after);
    }
    expected = entry.end;
    previous = &entry;
  }
  if (expected != data_size) {
    throw CheckpointError(path, "",
                          std::to_string(data_size - expected) +
                              " trailing bytes not covered by any tensor (data area is " +
                              std::to_string(data_size) + " bytes, tensors end at " +
                              std::to_string(expected) + ")");
  }
}

// Reads exactly `size` bytes at `offset`, retrying short reads; a file that shrinks under us reads
// as truncated.
void read_exactly(const std::string& path, int fd, uint8_t* out, uint64_t size, uint64_t offset) {
  while (size > 0) {
    const ssize_t got = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      throw CheckpointError(path, "", std::string("cannot read: ") + std::strerror(errno));
    if (got == 0) throw CheckpointError(path, "", "truncated: file ended while reading the header");
    out += got;
    size -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

class Fd {
 public:
  explicit Fd(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0)
      throw CheckpointError(path, "", std::string("cannot open: ") + std::strerror(errno));
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

uint64_t regular_file_size(const std::string& path, int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw CheckpointError(path, "", std::string("cannot open: ") + std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) throw CheckpointError(path, "", "cannot open: not a regular file");
  return static_cast<uint64_t>(info.st_size);
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape)
    n *= dim;
  return n;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = std::make_unique<MappedFile>(path);
  const MappedFile& map = *file->mapping_;
  check_not_truncated(path, map.size());
  const uint64_t header_len = checked_header_length(path, map.data(), map.size());
  file->parse_header(map.data() + 8, header_len, map.size());
  return file;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open_header_only(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  Fd fd(path);
  const uint64_t file_size = regular_file_size(path, fd.get());
  check_not_truncated(path, file_size);
  uint8_t prefix[8];
  read_exactly(path, fd.get(), prefix, 8, 0);
  const uint64_t header_len = checked_header_length(path, prefix, file_size);
  std::vector<uint8_t> header(header_len);
  read_exactly(path, fd.get(), header.data(), header_len, 8);
  file->parse_header(header.data(), header_len, file_size);
  return file;
}

void SafetensorsFile::parse_header(const uint8_t* header, uint64_t header_len, uint64_t file_size) {
  data_offset_ = 8 + header_len;
  const uint64_t data_size = file_size - data_offset_;
  const Value root = parse_header_json(path_, header, header_len);
  if (!root.is_map()) {
    throw CheckpointError(path_, "",
                          std::string("header is not a JSON object, got ") + root.kind_name());
  }
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, value] : root.as_map()) {
    if (name == kMetadataKey) {
      metadata_ = parse_metadata(path_, value);
    } else {
      entries.push_back(parse_entry(path_, name, value, data_size));
    }
  }
  check_layout(path_, entries, data_size);
  entries_ = std::move(entries);
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) {
    // The JSON reader already rejects duplicate keys; this keeps the index honest regardless.
    if (!index_.emplace(entries_[i].name, i).second) {
      throw CheckpointError(path_, entries_[i].name, "tensor appears twice in the header");
    }
  }
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const SafetensorsEntry& SafetensorsFile::at(const std::string& name) const {
  const SafetensorsEntry* entry = find(name);
  if (entry == nullptr) throw CheckpointError(path_, name, "no such tensor in this file");
  return *entry;
}

const uint8_t* SafetensorsFile::data(const SafetensorsEntry& entry) const {
  const MappedFile& map = mapping();
  // Guards against an entry taken from another (larger) file being used with this one.
  if (entry.begin > entry.end || entry.end > map.size() - data_offset_) {
    throw CheckpointError(path_, entry.name,
                          "data_offsets " + offsets_text(entry.begin, entry.end) +
                              " lie outside this file's data area");
  }
  return map.data() + data_offset_ + entry.begin;
}

const MappedFile& SafetensorsFile::mapping() const {
  if (!mapping_) {
    throw CheckpointError(path_, "", "opened header-only: tensor data is not mapped");
  }
  return *mapping_;
}

}  // namespace qplug
