#include "quantize_4bit.hpp"

#include <algorithm>

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mean.h>

#include "code_tables.hpp"

namespace qplug::bnb {

namespace {
constexpr int64_t kNestedBlocksize = 256;
// Blocks per parallel task: enough work to amortise scheduling.
constexpr int64_t kGrainElements = 1 << 16;
}  // namespace

FourBitCodebook codebook(QuantType type) {
  FourBitCodebook book;
  book.nf4 = type == QuantType::NF4;
  std::copy_n(four_bit_table(type).begin(), 16, book.table);
  std::copy_n(nf4_thresholds().begin(), 15, book.nf4_thresholds);
  std::copy_n(fp4_magnitude_thresholds().begin(), 7, book.fp4_thresholds);
  std::copy_n(fp4_magnitude_codes().begin(), 8, book.fp4_codes);
  return book;
}

FourBitWeight quantize_4bit(const at::Tensor& weight, const FourBitSettings& settings,
                            const CpuKernels& kernels) {
  const at::Tensor x = weight.to(at::kFloat).contiguous();
  const int64_t n = x.numel();
  const int64_t bs = settings.blocksize;
  const int64_t blocks = (n + bs - 1) / bs;
  FourBitWeight out;
  out.packed = at::empty({(n + 1) / 2, 1}, at::TensorOptions().dtype(at::kByte));
  out.absmax = at::empty({blocks}, at::TensorOptions().dtype(at::kFloat));
  const FourBitCodebook book = codebook(settings.quant_type);
  const float* src = x.data_ptr<float>();
  uint8_t* packed = out.packed.data_ptr<uint8_t>();
  float* absmax = out.absmax.data_ptr<float>();
  at::parallel_for(0, blocks, std::max<int64_t>(1, kGrainElements / bs),
                   [&](int64_t first, int64_t last) {
                     kernels.quantize_4bit(src, n, bs, book, first, last, packed, absmax);
                   });
  if (settings.double_quant) double_quantize(out);
  return out;
}

void double_quantize(FourBitWeight& weight) {
  const at::Tensor absmax = weight.absmax;
  const int64_t blocks = absmax.numel();
  weight.nested_offset = at::mean(absmax).item<float>();
  const at::Tensor map = dynamic_map_signed();
  const float* code = map.data_ptr<float>();
  float midpoints[255];
  for (int i = 0; i < 255; ++i)
    midpoints[i] = (code[i] + code[i + 1]) / 2.0f;

  const int64_t nested_blocks = (blocks + kNestedBlocksize - 1) / kNestedBlocksize;
  weight.absmax_codes = at::empty({blocks}, at::TensorOptions().dtype(at::kByte));
  weight.nested_absmax = at::empty({nested_blocks}, at::TensorOptions().dtype(at::kFloat));
  const float* a = absmax.data_ptr<float>();
  uint8_t* codes = weight.absmax_codes.data_ptr<uint8_t>();
  float* nested = weight.nested_absmax.data_ptr<float>();
  for (int64_t nb = 0; nb < nested_blocks; ++nb) {
    const int64_t begin = nb * kNestedBlocksize;
    const int64_t end = std::min(blocks, begin + kNestedBlocksize);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i)
      m = std::max(m, std::abs(a[i] - weight.nested_offset));
    nested[nb] = m;
    const float inv = 1.0f / m;
    for (int64_t i = begin; i < end; ++i) {
      float y = (a[i] - weight.nested_offset) * inv;
      if (m == 0.0f) y = 0.0f;  // every scale equals the mean: the code of 0
      y = std::min(1.0f, std::max(-1.0f, y));
      // bucketize(right=False): the number of midpoints strictly below y.
      codes[i] = static_cast<uint8_t>(std::lower_bound(midpoints, midpoints + 255, y) - midpoints);
    }
  }
  weight.nested = true;
  weight.absmax =
      dequantize_absmax(weight.absmax_codes, weight.nested_absmax, weight.nested_offset);
}

at::Tensor dequantize_absmax(const at::Tensor& codes, const at::Tensor& nested_absmax,
                             float offset) {
  const at::Tensor map = dynamic_map_signed();
  const float* code = map.data_ptr<float>();
  const int64_t blocks = codes.numel();
  at::Tensor out = at::empty({blocks}, at::TensorOptions().dtype(at::kFloat));
  const uint8_t* c = codes.data_ptr<uint8_t>();
  const float* nested = nested_absmax.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < blocks; ++i)
    o[i] = code[c[i]] * nested[i / kNestedBlocksize] + offset;
  return out;
}

at::Tensor dequantize_4bit(const at::Tensor& packed, const at::Tensor& absmax, int64_t n,
                           int64_t blocksize, const float* table, const CpuKernels& kernels) {
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kFloat));
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  const uint8_t* p = packed.data_ptr<uint8_t>();
  const float* a = absmax.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, blocks, std::max<int64_t>(1, kGrainElements / blocksize),
                   [&](int64_t first, int64_t last) {
                     kernels.dequantize_4bit(p, a, n, blocksize, table, first, last,
                                             o + first * blocksize);
                   });
  return out;
}

}  // namespace qplug::bnb
