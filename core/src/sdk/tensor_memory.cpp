#include "qplug/sdk/tensor_memory.hpp"

#include <sys/mman.h>

#include <string>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {

namespace {
constexpr uint64_t kHugePage = 2ull << 20;
}  // namespace

at::Tensor empty_for_weights(const std::vector<int64_t>& shape, c10::ScalarType dtype) {
  uint64_t numel = 1;
  for (int64_t d : shape)
    numel *= static_cast<uint64_t>(d);
  const uint64_t bytes = numel * c10::elementSize(dtype);
  if (bytes < kHugePage) return at::empty(shape, at::TensorOptions().dtype(dtype));
  // Over-map by one huge page so the start can be aligned to 2 MiB; the unused head is never
  // touched, so it costs address space only.
  const uint64_t mapped = bytes + kHugePage;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    throw Error("out of memory: could not map " + std::to_string(bytes) + " bytes for a " +
                std::string(c10::toString(dtype)) + " tensor of shape " + shape_string(shape));
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  // Without transparent huge pages in the kernel this fails and the memory stays in 4 KiB pages.
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return at::from_blob(
      reinterpret_cast<void*>(aligned), shape, [raw, mapped](void*) { munmap(raw, mapped); },
      at::TensorOptions().dtype(dtype));
}

}  // namespace qplug
