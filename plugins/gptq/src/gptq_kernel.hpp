// The GPTQ linear kernel on the CPU: holds a QuantLinear's tensors under GPTQModel's names
// (qweight, qzeros, scales, g_idx, bias), v1 or v2 zeros, 2/3/4/8 bits. 4-bit layers run the
// fused int4 kernels; the other widths dequantize and use BLAS (correct, not fast).
#pragma once

#include <memory>

#include <qplug/sdk/linear_kernel.hpp>

namespace qplug::gptq {

std::unique_ptr<LinearKernel> make_gptq_kernel(const LinearKernelArgs& args);

// Bytes a GPTQ layer stores (for `qplug inspect`).
int64_t gptq_layer_bytes(int64_t in, int64_t out, bool bias, int bits, int64_t group_size);

}  // namespace qplug::gptq
