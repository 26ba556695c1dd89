// Blockwise 4-bit quantization (FORMATS.md A.2-A.4) as the CUDA kernels produce it, with optional
// double quantization of the absmax scales.
#pragma once

#include <ATen/core/Tensor.h>

#include "bnb_config.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

struct FourBitWeight {
  at::Tensor packed;  // uint8 [(n + 1) / 2, 1]
  // float32 [blocks]: the scales; undefined when nested, where only the codes below are kept (as in
  // bitsandbytes: double quantization is there to save this memory) and the matmuls decode a run of
  // rows' scales at a time (the kernels' decode_nested_scales). float_scales() gives them all.
  at::Tensor absmax;
  bool nested = false;
  at::Tensor absmax_codes;   // uint8 [blocks] (nested)
  at::Tensor nested_absmax;  // float32 [ceil(blocks / 256)] (nested)
  at::Tensor nested_map;     // float32 [256]: what each of absmax_codes stands for (nested)
  float nested_offset = 0.0f;
};

FourBitCodebook codebook(QuantType type);

// Quantizes a floating-point tensor of any shape (flattened row-major). Runs multi-threaded.
FourBitWeight quantize_4bit(const at::Tensor& weight, const FourBitSettings& settings,
                            const CpuKernels& kernels);

// A [rows, K] weight (K % blocksize == 0) quantized straight into the interleaved layout
// (interleaved_rows.hpp): the bytes interleave_rows gives from quantize_4bit's tensors, without
// making those first (for a 4096 x 4096 layer on the Zen 5: 11.7 ms, where quantize_4bit took 11.8
// and the copy into rows 4.1 more). No double quantization.
at::Tensor quantize_4bit_rows(const at::Tensor& weight, const FourBitSettings& settings,
                              const CpuKernels& kernels);

// Double quantization of the scales: offset = mean(absmax) (LibTorch's float32 mean, as
// upstream), then blocks of 256 of (absmax - offset) to the nearest entry of the signed dynamic
// map (ties to the lower entry, as bucketize on the float32 midpoints).
void double_quantize(FourBitWeight& weight);
// absmax[i] = map[codes[i]] * nested_absmax[i / 256] + offset, in float32: a multiply and an add,
// each rounded, as bitsandbytes' dequantize_blockwise of the codes and its + offset.
at::Tensor dequantize_absmax(const at::Tensor& codes, const at::Tensor& nested_absmax,
                             const at::Tensor& map, float offset);
// Every block's float32 scale: `absmax`, or decoded from the nested codes when absmax was dropped.
at::Tensor float_scales(const FourBitWeight& weight);

// The dense float32 tensor of n elements (shape [n]) the packed codes and float32 scales stand
// for, with `table` the code values (a checkpoint's quant_map).
at::Tensor dequantize_4bit(const at::Tensor& packed, const at::Tensor& absmax, int64_t n,
                           int64_t blocksize, const float* table, const CpuKernels& kernels);

}  // namespace qplug::bnb
