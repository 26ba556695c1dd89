// The bitsandbytes LLM.int8 linear kernel on the CPU: row-wise int8 weights with their scales
// (Linear8bitLt's weight / SCB / weight_format), and the outlier decomposition at inference.
#pragma once

#include <memory>

#include <qplug/sdk/linear_kernel.hpp>

namespace qplug::bnb {

std::unique_ptr<LinearKernel> make_eight_bit_kernel(const LinearKernelArgs& args);

}  // namespace qplug::bnb
