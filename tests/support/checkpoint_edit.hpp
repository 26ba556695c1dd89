// Copying a checkpoint folder with its tensors edited, to build broken-on-purpose checkpoints.
#pragma once

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug::testing {

using TensorMap = std::map<std::string, at::Tensor>;

// Every tensor of a single-file checkpoint folder.
inline TensorMap read_tensors(const std::filesystem::path& folder) {
  TensorMap out;
  const auto file = SafetensorsFile::open((folder / "model.safetensors").string());
  for (const auto& e : file->entries()) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(to_scalar_type(e.dtype)));
    if (e.nbytes()) std::memcpy(t.data_ptr(), file->data(e), e.nbytes());
    out[e.name] = t;
  }
  return out;
}

inline void write_tensors(const std::filesystem::path& folder, const TensorMap& tensors) {
  std::vector<SafetensorsTensor> out;
  std::vector<at::Tensor> keep;
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.contiguous());
    out.push_back({name, from_scalar_type(t.scalar_type()), t.sizes().vec(), keep.back().data_ptr(),
                   static_cast<uint64_t>(t.numel() * t.element_size())});
  }
  write_safetensors((folder / "model.safetensors").string(), std::move(out));
}

// Copies `from` to `to` (which must not exist), applying `edit` to the tensors.
inline void copy_checkpoint(const std::filesystem::path& from, const std::filesystem::path& to,
                            const std::function<void(TensorMap&)>& edit) {
  std::filesystem::create_directories(to);
  for (const auto& entry : std::filesystem::directory_iterator(from))
    if (entry.path().filename() != "model.safetensors")
      std::filesystem::copy_file(entry.path(), to / entry.path().filename());
  TensorMap tensors = read_tensors(from);
  edit(tensors);
  write_tensors(to, tensors);
}

}  // namespace qplug::testing
