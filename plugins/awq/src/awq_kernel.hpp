// The AWQ linear kernel on the CPU: holds a WQLinear_GEMM or WQLinear_GEMV layer's tensors under
// AutoAWQ's names (qweight, qzeros, scales, bias; FORMATS.md D.4). The codes are repacked once
// into the GPTQ order the shared int4 kernels read; shapes those cannot split into groups of a
// multiple of 8 keep a dequantized weight and use BLAS (correct, not fast).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <qplug/sdk/linear_kernel.hpp>

#include "awq_config.hpp"

namespace qplug::awq {

std::unique_ptr<LinearKernel> make_awq_kernel(const LinearKernelArgs& args);

// nullopt when a Linear of this shape fits the version's layout, else a sentence saying why not
// (e.g. "out_features 172 is not a multiple of 8").
std::optional<std::string> awq_layout_reason(int64_t in_features, int64_t out_features,
                                             int64_t group_size, AwqVersion version);

// Bytes an AWQ layer stores (for `qplug inspect`). The shape must fit the layout.
int64_t awq_layer_bytes(int64_t in, int64_t out, bool bias, int64_t group_size, AwqVersion version);

}  // namespace qplug::awq
