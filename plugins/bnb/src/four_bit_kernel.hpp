// The bitsandbytes 4-bit linear kernel on the CPU: holds a Linear4bit's tensors under
// transformers' names, quantizes a dense weight as it loads (or accepts a pre-quantized one), and
// multiplies with a fused dequantize-GEMV for small batches.
#pragma once

#include <memory>

#include <qplug/sdk/linear_kernel.hpp>

namespace qplug::bnb {

std::unique_ptr<LinearKernel> make_four_bit_kernel(const LinearKernelArgs& args);

}  // namespace qplug::bnb
