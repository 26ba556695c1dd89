// Memory for weights: tensors that live as long as the model and that kernels stream through on
// every call. Two costs shape it on the machines we run on: a page fault takes ~12 us per 4 KiB
// page, and a cold GEMV over 4 KiB pages misses the TLB every 4 KiB (measured: 15-30% slower than
// over 2 MiB pages). Transparent huge pages are "madvise"-only there, so the memory has to ask.
#pragma once

#include <cstdint>
#include <vector>

#include <c10/core/ScalarType.h>

namespace at {
class Tensor;
}

namespace qplug {

// An uninitialised CPU tensor. From 2 MiB up: 2 MiB-aligned anonymous memory advised for
// transparent huge pages (MADV_HUGEPAGE), unmapped when the last tensor using it goes; smaller
// ones come from at::empty. SDK 1.2. Meant for long-lived buffers, not per-call temporaries (each
// large one is its own mapping). Throws qplug::Error when the memory cannot be mapped.
at::Tensor empty_for_weights(const std::vector<int64_t>& shape, c10::ScalarType dtype);

}  // namespace qplug
