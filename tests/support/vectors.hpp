// Reading ../shared/spec/vectors/*.safetensors into tensors, for tests that compare byte for byte.
#pragma once

#include <cstring>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/torch_interop.hpp"
#include "test_support.hpp"

namespace qplug::testing {

class VectorFile {
 public:
  explicit VectorFile(const std::string& name)
      : file_(SafetensorsFile::open((shared_dir() / "spec" / "vectors" / name).string())) {}

  // A copy of the named tensor (throws CheckpointError if absent).
  at::Tensor operator[](const std::string& tensor) const {
    const SafetensorsEntry& e = file_->at(tensor);
    at::Tensor out = at::empty(e.shape, at::TensorOptions().dtype(to_scalar_type(e.dtype)));
    if (e.nbytes() > 0) std::memcpy(out.data_ptr(), file_->data(e), e.nbytes());
    return out;
  }
  bool contains(const std::string& tensor) const { return file_->find(tensor) != nullptr; }

 private:
  std::shared_ptr<SafetensorsFile> file_;
};

// Bitwise equality (so -0.0 differs from 0.0 and NaN equals NaN with the same bits).
inline bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.numel() == 0) return true;  // (an empty tensor's data pointer may be null: no memcmp)
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

inline std::string tensor_bytes_as_string(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

}  // namespace qplug::testing
