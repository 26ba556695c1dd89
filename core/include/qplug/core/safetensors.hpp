// safetensors: our own small, strict reader and writer.
//
// Format: 8-byte little-endian header length N, then N bytes of JSON
//   {"__metadata__": {"k": "v", ...}, "<tensor>": {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// then the raw little-endian tensor bytes; offsets are relative to the end of the header.
//
// Reading maps the file (mmap, read-only) and validates everything before handing out a byte: the
// header length fits in the file, the header is <= 100 MB of valid JSON, every dtype is known,
// shape x dtype size == byte length, offsets lie inside the data area, tensors are contiguous in
// file order without gaps or overlap, the data area is fully used. Every violation is a
// CheckpointError naming the file and the tensor.
//
// Writing sorts tensors by name, pads the header with spaces to a multiple of 8 bytes, and writes
// to the given path (callers write into a temporary folder and rename it into place).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qplug/sdk/dtype.hpp"

namespace qplug {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data area
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A read-only memory map of a whole file. Move-only; unmapped on destruction.
class MappedFile {
 public:
  // Throws CheckpointError naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Tells the kernel these bytes will not be needed again (MADV_DONTNEED on whole pages), so
  // streaming a checkpoint does not keep it all resident.
  void release(uint64_t begin, uint64_t end) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file. Throws CheckpointError naming the file (and tensor).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Reads and validates only the header (no mapping of the data), for inspection.
  static std::shared_ptr<SafetensorsFile> open_header_only(const std::string& path);

  const std::string& path() const { return path_; }
  // In file (offset) order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;
  // Throws CheckpointError naming the file and tensor when absent.
  const SafetensorsEntry& at(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's bytes inside the mapping (valid while this object lives). Throws if opened
  // header-only.
  const uint8_t* data(const SafetensorsEntry& entry) const;
  const MappedFile& mapping() const;
  uint64_t data_offset() const { return data_offset_; }  // 8 + header length

 private:
  SafetensorsFile() = default;
  void parse_header(const uint8_t* header, uint64_t header_len, uint64_t file_size);

  std::string path_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_offset_ = 0;
  std::unique_ptr<MappedFile> mapping_;
};

// A tensor to write: raw little-endian bytes (not owned; valid until write returns).
struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  uint64_t nbytes = 0;
};

// Writes a safetensors file: tensors sorted by name, header padded with spaces to 8 bytes.
// Validates that nbytes == numel x dtype size and names are unique. Throws CheckpointError.
void write_safetensors(const std::string& path, std::vector<SafetensorsTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// The same file, each tensor's bytes asked for only when its turn comes (in the file's order, by
// name; `data` is ignored): bytes_of(tensor) returns tensor.nbytes bytes, valid until the next
// call. For tensors made on the fly, such as a quantized layer's checkpoint form of a weight it
// keeps in another layout, so that one of them at a time is in memory, not the whole file's.
void write_safetensors_streamed(
    const std::string& path, std::vector<SafetensorsTensor> tensors,
    const std::function<const void*(const SafetensorsTensor&)>& bytes_of,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// ---- sharded checkpoints: model.safetensors.index.json ------------------------------------

struct ShardPlan {
  // file name -> names of the tensors it holds, in write order
  std::vector<std::pair<std::string, std::vector<std::string>>> shards;
};

// Splits tensors (name, bytes) into shards of at most max_shard_bytes each, greedily in the given
// order, as transformers' split_torch_state_dict_into_shards does; a tensor larger than the limit
// gets a shard of its own. One shard is named "model.safetensors"; several are
// "model-00001-of-00003.safetensors", ...
ShardPlan plan_shards(const std::vector<std::pair<std::string, uint64_t>>& tensors,
                      uint64_t max_shard_bytes);

// Parses "5GB", "500MB", "2GiB", "1000000" (bytes) as transformers' convert_file_size_to_int does
// (GB = 10^9, GiB = 2^30). Throws ConfigError on anything else.
uint64_t parse_size(const std::string& text);

// Writes model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {...}} with
// weight_map sorted by tensor name, indent 2, as transformers writes it.
void write_shard_index(const std::string& path, uint64_t total_size,
                       const std::vector<std::pair<std::string, std::string>>& weight_map);

// All tensors of a checkpoint folder: model.safetensors, or the shards listed by
// model.safetensors.index.json (every listed shard must exist and hold exactly the tensors the
// index assigns it). Opens files header-only or mapped.
class CheckpointFiles {
 public:
  static CheckpointFiles open(const std::string& folder, bool header_only);
  const std::string& folder() const { return folder_; }
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  // The file holding a tensor, or null.
  const SafetensorsFile* file_of(const std::string& tensor) const;
  std::vector<std::string> tensor_names() const;  // sorted
  uint64_t total_bytes() const;

 private:
  std::string folder_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;
};

}  // namespace qplug
