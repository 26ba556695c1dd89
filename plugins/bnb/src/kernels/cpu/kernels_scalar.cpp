// Portable reference implementations of the bnb CPU kernels.
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

uint8_t code_of(float x, const FourBitCodebook& book) {
  if (book.nf4) {
    uint8_t code = 0;
    for (float t : book.nf4_thresholds)
      code += x > t;  // NaN: never greater -> 0
    return code;
  }
  const uint8_t sign = x < 0 ? 8 : 0;
  const float a = std::fabs(x);
  int bucket = 0;
  for (float t : book.fp4_thresholds)
    bucket += a > t;
  return static_cast<uint8_t>(book.fp4_codes[bucket] | sign);
}

void quantize_4bit(const float* x, int64_t n, int64_t blocksize, const FourBitCodebook& book,
                   int64_t first_block, int64_t last_block, uint8_t* packed, float* absmax) {
  for (int64_t b = first_block; b < last_block; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t end = std::min(n, begin + blocksize);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i)
      m = std::fmax(m, std::fabs(x[i]));
    absmax[b] = m;
    const float inv = 1.0f / m;  // inf for an all-zero block, as on the GPU
    for (int64_t i = begin; i < end; i += 2) {
      const uint8_t hi = code_of(x[i] * inv, book);
      const uint8_t lo = code_of(i + 1 < end ? x[i + 1] * inv : 0.0f * inv, book);
      packed[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
}

void dequantize_4bit(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize,
                     const float* table, int64_t first_block, int64_t last_block, float* out) {
  for (int64_t b = first_block; b < last_block; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t end = std::min(n, begin + blocksize);
    const float scale = absmax[b];
    float* dst = out + (begin - first_block * blocksize);
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t byte = packed[i / 2];
      dst[i - begin] = table[(i % 2 == 0) ? byte >> 4 : byte & 15] * scale;
    }
  }
}

void gemv_4bit(const float* x_split, int64_t M, int64_t K, const FourBitRows& w, int64_t blocksize,
               const float* table, int64_t first_row, int64_t last_row, float* y,
               int64_t y_stride) {
  const int64_t half = K / 2;
  const int64_t blocks_per_row = K / blocksize;
  for (int64_t o = first_row; o < last_row; ++o) {
    const uint8_t* row_bytes = w.codes + o * w.codes_stride;
    const float* scales = w.scales + o * w.scales_stride;
    for (int64_t m = 0; m < M; ++m) {
      const float* xe = x_split + m * K;
      const float* xo = xe + half;
      float row = 0.0f;
      for (int64_t blk = 0; blk < blocks_per_row; ++blk) {
        const uint8_t* bytes = row_bytes + blk * blocksize / 2;
        const int64_t j0 = blk * blocksize / 2;
        float acc = 0.0f;
        for (int64_t j = 0; j < blocksize / 2; ++j)
          acc += table[bytes[j] >> 4] * xe[j0 + j] + table[bytes[j] & 15] * xo[j0 + j];
        row += acc * scales[blk];
      }
      y[m * y_stride + o] = row;
    }
  }
}

// Tiles in element order: dequantize_4bit over whole blocks.
void decode_tile(const uint8_t* packed, const float* absmax, int64_t blocksize, const float* table,
                 int64_t first_block, int64_t last_block, float* out) {
  dequantize_4bit(packed, absmax, last_block * blocksize, blocksize, table, first_block, last_block,
                  out);
}

// x_arranged: the inputs in element order, rows K apart (copy_inputs).
void gemm_tile(const float* x_arranged, int64_t M, int64_t K, int64_t k0, const float* w,
               int64_t rows, int64_t kc, float* y, int64_t ldy, bool accumulate) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = 0; r < rows; ++r) {
      float sum = 0.0f;
      for (int64_t k = 0; k < kc; ++k)
        sum += x_arranged[m * K + k0 + k] * w[r * kc + k];
      float& out = y[m * ldy + r];
      out = accumulate ? out + sum : sum;
    }
}

void quantize_int8_rows(const float* w, int64_t K, int64_t first_row, int64_t last_row,
                        int8_t* codes, float* scb) {
  for (int64_t r = first_row; r < last_row; ++r) {
    const float* row = w + r * K;
    float m = 0.0f;
    for (int64_t k = 0; k < K; ++k)
      m = std::fmax(m, std::fabs(row[k]));
    scb[r] = m;
    // torch's `127.0 / row_stats` is reciprocal(row_stats) * 127: the same rounding, bit for bit.
    const float factor = m > 0.0f ? (1.0f / m) * 127.0f : 0.0f;
    for (int64_t k = 0; k < K; ++k)
      codes[r * K + k] = static_cast<int8_t>(std::nearbyint(row[k] * factor));  // half to even
  }
}

void round_to_float16(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(c10::Half(x[i]));
}

void int8_matmul(const int8_t* a, int64_t M, int64_t K, const int8_t* b,
                 const int32_t* /*row_sums*/, int64_t first_row, int64_t last_row, int32_t* out,
                 int64_t out_stride) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = first_row; o < last_row; ++o)
      out[m * out_stride + o] = 0;
  add_int8_products(a, M, K, 0, b, first_row, last_row, out, out_stride);
}

// Tiles in element order: the inputs are a plain copy.
void copy_inputs(const float* x, int64_t M, int64_t K, float* out) {
  std::memcpy(out, x, sizeof(float) * static_cast<size_t>(M * K));
}

}  // namespace

void add_int8_products(const int8_t* a, int64_t M, int64_t K, int64_t first_k, const int8_t* b,
                       int64_t first_row, int64_t last_row, int32_t* out, int64_t out_stride) {
  if (first_k >= K) return;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = first_row; o < last_row; ++o) {
      int32_t acc = 0;
      for (int64_t k = first_k; k < K; ++k)
        acc += int32_t{a[m * K + k]} * int32_t{b[o * K + k]};
      out[m * out_stride + o] += acc;
    }
}

void int8_row_sums(const int8_t* b, int64_t K, int64_t first_row, int64_t last_row, int32_t* sums) {
  for (int64_t o = first_row; o < last_row; ++o) {
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k)
      sum += b[o * K + k];
    sums[o] = sum;
  }
}

NestedScaleMap nested_scale_map(const float* values) {
  NestedScaleMap map;
  for (int c = 0; c < 256; ++c) {
    map.values[c] = values[c];
    uint32_t bits;
    std::memcpy(&bits, values + c, 4);
    for (int b = 0; b < 4; ++b)
      map.planes[b][c] = static_cast<uint8_t>(bits >> (8 * b));
  }
  return map;
}

void decode_nested_scales_scalar(const uint8_t* codes, const float* nested_absmax,
                                 const NestedScaleMap& map, float offset, int64_t first_block,
                                 int64_t last_block, float* out) {
  for (int64_t i = first_block; i < last_block;) {
    // A nested block at a time, under one nested scale.
    const int64_t end = std::min(last_block, (i / kNestedBlocksize + 1) * kNestedBlocksize);
    const float nested = nested_absmax[i / kNestedBlocksize];
    for (; i < end; ++i)
      out[i - first_block] = map.values[codes[i]] * nested + offset;
  }
}

void arrange_even_odd(const float* x, int64_t M, int64_t K, float* out) {
  const int64_t half = K / 2;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < half; ++j) {
      out[m * K + j] = x[m * K + 2 * j];
      out[m * K + half + j] = x[m * K + 2 * j + 1];
    }
}

const CpuKernels& scalar_kernels() {
  // No faster decode for bf16 tables here: the general GEMV computes the same sums.
  static const CpuKernels kernels{"scalar",           quantize_4bit,
                                  dequantize_4bit,    arrange_even_odd,
                                  gemv_4bit,          arrange_even_odd,
                                  gemv_4bit,          copy_inputs,
                                  decode_tile,        gemm_tile,
                                  quantize_int8_rows, int8_matmul,
                                  round_to_float16,   decode_nested_scales_scalar};
  return kernels;
}

}  // namespace qplug::bnb
