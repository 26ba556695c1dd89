// write_safetensors: the header exactly as the safetensors crate serializes it (serde_json compact
// form, __metadata__ first, spaces to a multiple of 8), then the tensor bytes straight from the
// callers' buffers, so writing a multi-GB shard never needs a second copy of it in memory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

namespace {

// write(2) moves at most ~2 GiB per call on Linux; smaller chunks keep every call well inside that.
constexpr uint64_t kMaxWriteChunk = uint64_t{1} << 30;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

// serde_json and Python's json with ensure_ascii=False escape strings identically (", \, control
// characters; UTF-8 kept as is), so the JSON writer's string form is the crate's string form.
std::string json_string(const std::string& text) {
  JsonWriteOptions options;
  options.ensure_ascii = false;
  return to_json(Value(text), options);
}

// numel x dtype size, with negative dimensions and 64-bit overflow reported instead of wrapping.
uint64_t expected_bytes(const std::string& path, const SafetensorsTensor& tensor) {
  uint64_t numel = 1;
  for (int64_t dim : tensor.shape) {
    if (dim < 0) {
      throw CheckpointError(path, tensor.name,
                            "shape " + shape_text(tensor.shape) + " has a negative dimension");
    }
    const uint64_t d = static_cast<uint64_t>(dim);
    if (d != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / d) {
      throw CheckpointError(path, tensor.name,
                            "shape " + shape_text(tensor.shape) + " has too many elements");
    }
    numel *= d;
  }
  const uint64_t size = static_cast<uint64_t>(dtype_size(tensor.dtype));
  if (numel > std::numeric_limits<uint64_t>::max() / size) {
    throw CheckpointError(path, tensor.name,
                          "shape " + shape_text(tensor.shape) + " is too many bytes");
  }
  return numel * size;
}

void validate_tensors(const std::string& path, const std::vector<SafetensorsTensor>& sorted) {
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafetensorsTensor& tensor = sorted[i];
    if (i > 0 && sorted[i - 1].name == tensor.name) {
      throw CheckpointError(path, tensor.name, "tensor name given twice");
    }
    if (tensor.name == "__metadata__") {
      throw CheckpointError(path, tensor.name, "the name is reserved for the header's metadata");
    }
    const uint64_t expected = expected_bytes(path, tensor);
    if (tensor.nbytes != expected) {
      throw CheckpointError(path, tensor.name,
                            "shape " + shape_text(tensor.shape) + " x " +
                                safetensors_name(tensor.dtype) + " is " + std::to_string(expected) +
                                " bytes but " + std::to_string(tensor.nbytes) + " were given");
    }
  }
}

std::string metadata_json(const std::map<std::string, std::string>& metadata) {
  std::string out = "{";
  for (const auto& [key, value] : metadata) {
    if (out.size() > 1) out += ",";
    out += json_string(key) + ":" + json_string(value);
  }
  return out + "}";
}

std::string tensor_json(const SafetensorsTensor& tensor, uint64_t begin) {
  return json_string(tensor.name) + ":{\"dtype\":\"" + safetensors_name(tensor.dtype) +
         "\",\"shape\":" + shape_text(tensor.shape) + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(begin + tensor.nbytes) + "]}";
}

// The header JSON, padded with spaces so the data area starts 8-byte aligned (as the crate does).
std::string build_header(const std::vector<SafetensorsTensor>& sorted,
                         const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) header += "\"__metadata__\":" + metadata_json(metadata);
  uint64_t offset = 0;
  for (const SafetensorsTensor& tensor : sorted) {
    if (header.size() > 1) header += ",";
    header += tensor_json(tensor, offset);
    offset += tensor.nbytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

std::string le64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// The file being written. Any failure closes and removes it, so a full disk never leaves a
// truncated safetensors file that a later run could mistake for a finished one.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw CheckpointError(path, "", std::string("cannot create: ") + std::strerror(errno));
    struct stat info {};
    // Only a regular file of ours may be removed on failure, never e.g. /dev/full.
    removable_ = ::fstat(fd_, &info) == 0 && S_ISREG(info.st_mode);
  }
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, uint64_t size, const std::string& tensor, const char* what) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t put = ::write(fd_, bytes, std::min(size, kMaxWriteChunk));
      if (put < 0 && errno == EINTR) continue;
      // write() returning 0 for a non-zero request means no progress is possible (full device).
      const int error = put < 0 ? errno : ENOSPC;
      if (put <= 0) fail(tensor, std::string("cannot write ") + what + ": " + std::strerror(error));
      bytes += put;
      size -= static_cast<uint64_t>(put);
    }
  }

  // close() can report a deferred write error (NFS, quota), so it is checked like a write.
  void close() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0)
      fail("", std::string("cannot close after writing: ") + std::strerror(errno));
  }

  void discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (removable_) ::unlink(path_.c_str());
    removable_ = false;
  }

 private:
  [[noreturn]] void fail(const std::string& tensor, const std::string& message) {
    throw CheckpointError(path_, tensor, message);
  }

  std::string path_;
  int fd_ = -1;
  bool removable_ = false;
};

}  // namespace

void write_safetensors(const std::string& path, std::vector<SafetensorsTensor> tensors,
                       const std::map<std::string, std::string>& metadata) {
  for (const SafetensorsTensor& tensor : tensors)
    if (tensor.nbytes > 0 && tensor.data == nullptr)
      throw CheckpointError(path, tensor.name, "data pointer is null");
  write_safetensors_streamed(
      path, std::move(tensors), [](const SafetensorsTensor& t) { return t.data; }, metadata);
}

void write_safetensors_streamed(
    const std::string& path, std::vector<SafetensorsTensor> tensors,
    const std::function<const void*(const SafetensorsTensor&)>& bytes_of,
    const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.name < b.name; });
  validate_tensors(path, tensors);
  const std::string header = build_header(tensors, metadata);
  const std::string prefix = le64(header.size());

  OutputFile out(path);
  try {
    out.write(prefix.data(), prefix.size(), "", "the header length");
    out.write(header.data(), header.size(), "", "the header");
    for (const SafetensorsTensor& tensor : tensors) {
      if (tensor.nbytes == 0) continue;
      const void* bytes = bytes_of(tensor);
      if (bytes == nullptr) throw CheckpointError(path, tensor.name, "data pointer is null");
      out.write(bytes, tensor.nbytes, tensor.name, "tensor data");
    }
    out.close();
  } catch (...) {
    out.discard();
    throw;
  }
}

}  // namespace qplug
