#include "quantize_4bit.hpp"

#include <algorithm>

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mean.h>

#include <qplug/sdk/tensor_memory.hpp>

#include "code_tables.hpp"
#include "interleaved_rows.hpp"

namespace qplug::bnb {

namespace {
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
  // The GEMV streams these on every call: weight memory (huge pages) keeps it off the TLB.
  out.packed = empty_for_weights({(n + 1) / 2, 1}, at::kByte);
  out.absmax = empty_for_weights({blocks}, at::kFloat);
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

at::Tensor quantize_4bit_rows(const at::Tensor& weight, const FourBitSettings& settings,
                              const CpuKernels& kernels) {
  const at::Tensor x = weight.to(at::kFloat).contiguous();
  const int64_t rows = x.size(0), K = x.size(1), bs = settings.blocksize;
  const int64_t row_bytes = interleaved_row_bytes(K, bs);
  at::Tensor out = empty_for_weights({rows, row_bytes}, at::kByte);
  const FourBitCodebook book = codebook(settings.quant_type);
  const float* src = x.data_ptr<float>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainElements / K),
                   [&](int64_t first, int64_t last) {
                     for (int64_t o = first; o < last; ++o) {
                       uint8_t* row = dst + o * row_bytes;
                       kernels.quantize_4bit(src + o * K, K, bs, book, 0, K / bs, row,
                                             reinterpret_cast<float*>(row + K / 2));
                     }
                   });
  return out;
}

namespace {
// For each y: how many of the 255 ascending midpoints are strictly below it, std::lower_bound's
// answer as bucketize(right=False) gives it. Branchless, and eight searches in step so that their
// dependent loads overlap: the branchy search mispredicted at every step on random scales and
// made double quantization cost as much as the 4-bit codes.
constexpr int kSearchLanes = 8;
void count_midpoints_below(const float* midpoints, const float* y, int count, uint8_t* out) {
  int idx[kSearchLanes] = {};
  for (int step = 128; step > 0; step >>= 1)
    for (int j = 0; j < count; ++j)
      idx[j] += midpoints[idx[j] + step - 1] < y[j] ? step : 0;
  for (int j = 0; j < count; ++j)
    out[j] = static_cast<uint8_t>(idx[j]);
}

// One nested block of scales a[0, count): its codes, and its absmax (returned).
float quantize_nested_block(const float* a, int64_t count, float offset, const float* midpoints,
                            uint8_t* codes) {
  float m = 0.0f;
  for (int64_t i = 0; i < count; ++i)
    m = std::max(m, std::abs(a[i] - offset));
  const float inv = 1.0f / m;
  for (int64_t i = 0; i < count; i += kSearchLanes) {
    const int lanes = static_cast<int>(std::min<int64_t>(kSearchLanes, count - i));
    float y[kSearchLanes];
    for (int j = 0; j < lanes; ++j) {
      // m == 0: every scale equals the mean, the code of 0.
      y[j] = m == 0.0f ? 0.0f : std::min(1.0f, std::max(-1.0f, (a[i + j] - offset) * inv));
    }
    count_midpoints_below(midpoints, y, lanes, codes + i);
  }
  return m;
}
}  // namespace

void double_quantize(FourBitWeight& weight) {
  const at::Tensor absmax = weight.absmax;
  const int64_t blocks = absmax.numel();
  const float offset = at::mean(absmax).item<float>();
  weight.nested_offset = offset;
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
  at::parallel_for(0, nested_blocks, 16, [&](int64_t first, int64_t last) {
    for (int64_t nb = first; nb < last; ++nb) {
      const int64_t begin = nb * kNestedBlocksize;
      const int64_t count = std::min(blocks, begin + kNestedBlocksize) - begin;
      nested[nb] = quantize_nested_block(a + begin, count, offset, midpoints, codes + begin);
    }
  });
  weight.nested = true;
  weight.nested_map = map;
  weight.absmax = at::Tensor();  // the codes stand for the scales now (float_scales decodes them)
}

at::Tensor dequantize_absmax(const at::Tensor& codes, const at::Tensor& nested_absmax,
                             const at::Tensor& map, float offset) {
  const at::Tensor m = map.to(at::kFloat).contiguous();
  const at::Tensor c = codes.contiguous();
  const at::Tensor nested = nested_absmax.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({codes.numel()}, at::TensorOptions().dtype(at::kFloat));
  decode_nested_scales_scalar(c.data_ptr<uint8_t>(), nested.data_ptr<float>(),
                              nested_scale_map(m.data_ptr<float>()), offset, 0, codes.numel(),
                              out.data_ptr<float>());
  return out;
}

at::Tensor float_scales(const FourBitWeight& weight) {
  if (weight.absmax.defined()) return weight.absmax;
  return dequantize_absmax(weight.absmax_codes, weight.nested_absmax, weight.nested_map,
                           weight.nested_offset);
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
