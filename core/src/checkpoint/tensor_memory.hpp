// Allocation for loaded weights. Page faults cost ~12 us per 4 KiB page on the machines we run
// on, so large tensors get 2 MiB-aligned anonymous memory with MADV_HUGEPAGE (transparent huge
// pages are "madvise"-only there), which cuts the faults by 512x.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qplug {

// An uninitialised CPU tensor; huge-page backed from 4 MiB up.
at::Tensor empty_for_load(const std::vector<int64_t>& shape, c10::ScalarType dtype);

}  // namespace qplug
