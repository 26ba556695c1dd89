#include "interleaved_rows.hpp"

#include <cstring>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <qplug/sdk/tensor_memory.hpp>

namespace qplug::bnb {

namespace {
// Rows per parallel task: a few hundred KiB of copying, worth a thread.
constexpr int64_t kRowsPerTask = 64;
}  // namespace

int64_t interleaved_row_bytes(int64_t K, int64_t blocksize) {
  return K / 2 + 4 * (K / blocksize);
}

at::Tensor interleave_rows(const at::Tensor& packed, const at::Tensor& absmax, int64_t rows,
                           int64_t K, int64_t blocksize) {
  const int64_t row_bytes = interleaved_row_bytes(K, blocksize);
  at::Tensor out = empty_for_weights({rows, row_bytes}, at::kByte);
  const int64_t scale_bytes = 4 * (K / blocksize);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const uint8_t* codes = packed.data_ptr<uint8_t>();
  const auto* scales = reinterpret_cast<const uint8_t*>(absmax.data_ptr<float>());
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t first, int64_t last) {
    for (int64_t o = first; o < last; ++o) {
      std::memcpy(dst + o * row_bytes, codes + o * (K / 2), K / 2);
      std::memcpy(dst + o * row_bytes + K / 2, scales + o * scale_bytes, scale_bytes);
    }
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> split_rows(const at::Tensor& interleaved, int64_t K,
                                             int64_t blocksize) {
  const int64_t rows = interleaved.size(0);
  at::Tensor packed = at::empty({rows * (K / 2), 1}, at::TensorOptions().dtype(at::kByte));
  at::Tensor absmax = at::empty({rows * (K / blocksize)}, at::TensorOptions().dtype(at::kFloat));
  const FourBitRows src = interleaved_rows(interleaved, K, blocksize);
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t first, int64_t last) {
    copy_rows_apart(rows_from(src, first), last - first, K, blocksize,
                    packed.data_ptr<uint8_t>() + first * (K / 2),
                    absmax.data_ptr<float>() + first * (K / blocksize));
  });
  return {packed, absmax};
}

FourBitRows interleaved_rows(const at::Tensor& interleaved, int64_t K, int64_t blocksize) {
  const int64_t row_bytes = interleaved_row_bytes(K, blocksize);
  const uint8_t* base = interleaved.data_ptr<uint8_t>();
  // The scales' offset and the row size are multiples of 4 (K / 2 is a multiple of 16).
  return {base, reinterpret_cast<const float*>(base + K / 2), row_bytes, row_bytes / 4};
}

void copy_rows_apart(const FourBitRows& w, int64_t rows, int64_t K, int64_t blocksize,
                     uint8_t* codes, float* scales) {
  const int64_t blocks_per_row = K / blocksize;
  for (int64_t o = 0; o < rows; ++o) {
    std::memcpy(codes + o * (K / 2), w.codes + o * w.codes_stride, K / 2);
    std::memcpy(scales + o * blocks_per_row, w.scales + o * w.scales_stride, 4 * blocks_per_row);
  }
}

}  // namespace qplug::bnb
