// The layout a 4-bit layer keeps a non-nested weight in when its rows are whole blocks: row by
// row, the row's K / 2 packed code bytes, then its K / blocksize float32 scales.
//
// Why: an M = 1 GEMV reads every code byte and every scale once. Kept as the checkpoint's two
// tensors, those are two streams through memory, and on Zen 5 with cold weights a plain read of
// that two-stream pattern is 8-12% slower than one stream of the same bytes. Over interleaved rows
// the same GEMV was, at M = 1 with cold weights (4096 and 11008 rows of 4096, in one process
// against the separate tensors, alternating), 14-17% faster in bfloat16 and float32 alike, as fast
// at M = 4 and 16, and 1-2% slower in the avx2 set (bound by its decode). Runs of rows (8 to 128
// rows' codes, then their scales) were 5-30% slower than separate tensors: the scales have to
// follow each row. Rows of more than 6144 weights were 7-18% slower than separate tensors, so
// those stay two tensors (kMaxInterleavedK in four_bit_kernel.cpp).
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

// Bytes per interleaved row: K / 2 of codes, then 4 * K / blocksize of scales (K % blocksize == 0,
// blocksize a power of 2 >= 32, so the scales are 4-byte aligned when the row is).
int64_t interleaved_row_bytes(int64_t K, int64_t blocksize);

// A uint8 [rows, interleaved_row_bytes] tensor (weight memory: huge pages) from the checkpoint's
// packed codes (rows * K / 2 bytes) and float32 scales (rows * K / blocksize).
at::Tensor interleave_rows(const at::Tensor& packed, const at::Tensor& absmax, int64_t rows,
                           int64_t K, int64_t blocksize);

// The checkpoint's tensors back, as fresh copies: packed uint8 [rows * K / 2, 1] and absmax
// float32 [rows * K / blocksize].
std::pair<at::Tensor, at::Tensor> split_rows(const at::Tensor& interleaved, int64_t K,
                                             int64_t blocksize);

// The kernels' view of the interleaved rows.
FourBitRows interleaved_rows(const at::Tensor& interleaved, int64_t K, int64_t blocksize);

// Copies rows [0, rows) of `w` to separate contiguous codes (rows * K / 2 bytes) and scales
// (rows * K / blocksize floats), for kernels that read the two separately (the AMX matmul).
void copy_rows_apart(const FourBitRows& w, int64_t rows, int64_t K, int64_t blocksize,
                     uint8_t* codes, float* scales);

}  // namespace qplug::bnb
