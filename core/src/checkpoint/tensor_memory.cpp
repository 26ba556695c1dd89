#include "checkpoint/tensor_memory.hpp"

#include <sys/mman.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {
constexpr uint64_t kHugePage = 2ull << 20;
constexpr uint64_t kHugeThreshold = 4ull << 20;
}  // namespace

at::Tensor empty_for_load(const std::vector<int64_t>& shape, c10::ScalarType dtype) {
  uint64_t numel = 1;
  for (int64_t d : shape)
    numel *= static_cast<uint64_t>(d);
  const uint64_t bytes = numel * c10::elementSize(dtype);
  if (bytes < kHugeThreshold) return at::empty(shape, at::TensorOptions().dtype(dtype));
  // Over-allocate by one huge page so the start can be aligned to 2 MiB.
  const uint64_t mapped = bytes + kHugePage;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    throw CheckpointError("", "", "out of memory allocating " + std::to_string(bytes) + " bytes");
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return at::from_blob(
      reinterpret_cast<void*>(aligned), shape, [raw, mapped](void*) { munmap(raw, mapped); },
      at::TensorOptions().dtype(dtype));
}

}  // namespace qplug
