// Per-thread scratch buffers for the kernel files. They live here, compiled without ISA flags,
// because a kernel file that instantiated std::vector would emit out-of-line copies of its members
// (compiled for AVX-512 or AMX) that the linker may pick for every other file's use of the same
// members, which would then fault on processors without those instructions.
#include <cstdint>
#include <cstdlib>
#include <new>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

struct Buffer {
  void* data = nullptr;
  size_t size = 0;
  ~Buffer() { std::free(data); }
};

}  // namespace

void* thread_scratch(ScratchSlot slot, size_t bytes) {
  thread_local Buffer buffers[static_cast<int>(ScratchSlot::kCount)];
  Buffer& buffer = buffers[static_cast<int>(slot)];
  if (buffer.data == nullptr || buffer.size < bytes) {
    // Grown, never shrunk: the next call of the same size reuses the pages (a fresh allocation
    // would fault them in again). Never null, even for 0 bytes: callers offset the pointer by
    // products that may be 0 (an empty batch, K < one vector step).
    const size_t size = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    void* data = std::aligned_alloc(64, size);
    if (data == nullptr) throw std::bad_alloc();
    std::free(buffer.data);
    buffer.data = data;
    buffer.size = size;
  }
  return buffer.data;
}

}  // namespace qplug::bnb
