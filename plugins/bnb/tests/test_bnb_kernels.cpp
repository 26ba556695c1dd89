// The bnb CPU kernels: every implementation (kernels_under_test.hpp: the AVX-512 one through SIMDe
// where the processor lacks it) against the scalar reference and against dense math,
// and the LinearKernel objects the plugin hands out (GEMV path, dequantized-tile path, int8 with
// and without outliers).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bnb_test_layers.hpp"
#include "eight_bit_kernel.hpp"
#include "four_bit_kernel.hpp"
#include "int8_activations.hpp"
#include "interleaved_rows.hpp"
#include "kernels_under_test.hpp"
#include "qplug/sdk/value.hpp"
#include "quantize_4bit.hpp"
#include "thread_count.hpp"
#include "vectors.hpp"

namespace qplug::bnb {
namespace {

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm())
      .item<double>();
}

// x [M, K] laid out for the set's float32 or bfloat16 GEMV.
at::Tensor arranged_for_gemv(const CpuKernels& k, const at::Tensor& x, bool bf16) {
  const at::Tensor input = x.contiguous();
  at::Tensor arranged = at::empty_like(input);
  (bf16 ? k.arrange_activations_bf16 : k.arrange_activations)(
      input.data_ptr<float>(), input.size(0), input.size(1), arranged.data_ptr<float>());
  return arranged;
}

// y [M, N] from the set's float32 or bfloat16 GEMV over rows [first_row, last_row) of w (the
// other rows stay zero), inputs from arranged_for_gemv.
at::Tensor gemv_of(const CpuKernels& k, bool bf16, const at::Tensor& arranged, const FourBitRows& w,
                   int64_t blocksize, const float* table, int64_t first_row, int64_t last_row,
                   int64_t N) {
  const int64_t M = arranged.size(0), K = arranged.size(1);
  at::Tensor y = at::zeros({M, N});
  (bf16 ? k.gemv_4bit_bf16 : k.gemv_4bit)(arranged.data_ptr<float>(), M, K, w, blocksize, table,
                                          first_row, last_row, y.data_ptr<float>(), N);
  return y;
}

// The separate tensors of a quantized weight, as the GEMVs read them.
FourBitRows rows_of(const FourBitWeight& q, int64_t K, int64_t blocksize) {
  return contiguous_rows(q.packed.data_ptr<uint8_t>(), q.absmax.data_ptr<float>(), K, blocksize);
}

class EveryIsa : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryIsa, QuantizeAgreesWithTheScalarReferenceOnRandomShapes) {
  const CpuKernels& k = kernels_under_test(GetParam());
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (int64_t bs : {32, 64, 128, 4096})
      for (int64_t n : {1, 31, 64, 1000, 5000}) {
        const at::Tensor x = randn({n}, n * 7 + bs);
        FourBitSettings s{type, false, bs, DType::F32};
        const FourBitWeight got = quantize_4bit(x, s, k);
        const FourBitWeight want = quantize_4bit(x, s, scalar_kernels());
        ASSERT_TRUE(at::equal(got.packed, want.packed)) << GetParam() << " n=" << n << " bs=" << bs;
        ASSERT_TRUE(at::equal(got.absmax, want.absmax));
        const FourBitCodebook book = codebook(type);
        ASSERT_TRUE(at::equal(
            dequantize_4bit(got.packed, got.absmax, n, bs, book.table, k),
            dequantize_4bit(want.packed, want.absmax, n, bs, book.table, scalar_kernels())));
      }
}

TEST_P(EveryIsa, TiesGoToTheLowerCodeAsOnTheGpu) {
  // Values exactly on an NF4 threshold (after scaling by an absmax of 1) take the lower code.
  const CpuKernels& k = kernels_under_test(GetParam());
  std::vector<float> values{1.0f};
  const FourBitCodebook book = codebook(QuantType::NF4);
  for (float t : book.nf4_thresholds)
    values.push_back(t);
  values.resize(32, 0.0f);
  const at::Tensor x = at::from_blob(values.data(), {32}, at::TensorOptions().dtype(at::kFloat));
  const FourBitWeight q =
      quantize_4bit(x, FourBitSettings{QuantType::NF4, false, 32, DType::F32}, k);
  const uint8_t* p = q.packed.data_ptr<uint8_t>();
  for (int i = 1; i <= 15; ++i) {
    const int code = (i % 2 == 0) ? p[i / 2] >> 4 : p[i / 2] & 15;
    EXPECT_EQ(code, i - 1) << "threshold " << i - 1;
  }
}

// Row lengths for a blocksize: whole chunks of 128 (the AVX-512 GEMVs' step) and, where the
// blocksize allows, rows that end in a shorter chunk of 32, 64 or 96. Rows are whole blocks, as
// the layer asks of the GEMV.
std::vector<int64_t> gemv_row_lengths(int64_t bs) {
  if (bs == 32) return {512, 544, 576, 608};
  if (bs == 64) return {512, 576};
  return {std::max<int64_t>(512, bs), std::max<int64_t>(768, 3 * bs)};
}

// Every class of the AVX-512 GEMV's chunk loop: 4 blocks per chunk (32), 2 (64), one for a chunk
// that is exactly a block (128) and for chunks inside larger blocks (256, 1024).
TEST_P(EveryIsa, FusedGemvMatchesDenseMath) {
  const CpuKernels& k = kernels_under_test(GetParam());
  for (int64_t bs : {32, 64, 128, 256, 1024})
    for (int64_t K : gemv_row_lengths(bs))
      for (int64_t M : {1, 2, 3, 4, 5, 9}) {
        const int64_t N = 48;
        const at::Tensor w = randn({N, K}, 11 + bs);
        const at::Tensor x = randn({M, K}, 17 + M);
        const FourBitWeight q =
            quantize_4bit(w, FourBitSettings{QuantType::NF4, false, bs, DType::F32}, k);
        const FourBitCodebook book = codebook(QuantType::NF4);
        const at::Tensor dense =
            dequantize_4bit(q.packed, q.absmax, N * K, bs, book.table, scalar_kernels())
                .view({N, K});
        const at::Tensor want = at::matmul(x.to(at::kDouble), dense.to(at::kDouble).t());
        const at::Tensor y = gemv_of(k, false, arranged_for_gemv(k, x, false), rows_of(q, K, bs),
                                     bs, book.table, 0, N, N);
        EXPECT_LT(relative_error(y, want), 1e-6)
            << GetParam() << " bs=" << bs << " K=" << K << " M=" << M;
      }
}

// The code table rounded to bfloat16, as the kernel uses it with bnb_4bit_compute_dtype bfloat16.
std::vector<float> bf16_table(QuantType type) {
  const FourBitCodebook book = codebook(type);
  const at::Tensor exact =
      at::from_blob(const_cast<float*>(book.table), {16}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor rounded = exact.to(at::kBFloat16).to(at::kFloat).contiguous();
  return {rounded.data_ptr<float>(), rounded.data_ptr<float>() + 16};
}

TEST_P(EveryIsa, Bf16TableGemvMatchesDenseMath) {
  const CpuKernels& k = kernels_under_test(GetParam());
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (int64_t bs : {32, 64, 256})
      for (int64_t K : gemv_row_lengths(bs))
        for (int64_t M : {1, 3, 4, 6}) {
          const int64_t N = 40;
          const at::Tensor w = randn({N, K}, 41 + bs);
          // Inputs in bfloat16 as well, as the layer rounds them before the GEMV.
          const at::Tensor x = randn({M, K}, 43 + M).to(at::kBFloat16).to(at::kFloat);
          const FourBitWeight q = quantize_4bit(w, FourBitSettings{type, false, bs, DType::F32}, k);
          const std::vector<float> table = bf16_table(type);
          const at::Tensor dense =
              dequantize_4bit(q.packed, q.absmax, N * K, bs, table.data(), scalar_kernels())
                  .view({N, K});
          // Rows [5, 37): the first and last rows stay untouched.
          const at::Tensor y = gemv_of(k, true, arranged_for_gemv(k, x, true), rows_of(q, K, bs),
                                       bs, table.data(), 5, 37, N);
          const at::Tensor want = at::matmul(x.to(at::kDouble), dense.to(at::kDouble).t());
          EXPECT_LT(relative_error(y.narrow(1, 5, 32), want.narrow(1, 5, 32)), 1e-6)
              << GetParam() << " bs=" << bs << " K=" << K << " M=" << M;
          EXPECT_EQ(y.narrow(1, 0, 5).abs().max().item<float>(), 0.0f);
          EXPECT_EQ(y.narrow(1, 37, 3).abs().max().item<float>(), 0.0f);
        }
}

// Every layout and walk of the GEMVs gives the same bits. The layer's interleaved rows (each row's
// scales after its codes) read as the checkpoint's separate tensors; and the AVX-512 GEMV, which
// multiplies one input a row at a time but several inputs, or one too long for L1, 16 rows at a
// time a slice of K at a time (512 for separate tensors, 1024 or 2048 for interleaved rows), adds
// each row's chunks in the same order, so an input gives the same bits alone as in a batch. Rows
// of every chunk class with a row tail (K % 128 != 0), rows of several slices, float32 rows of 8224
// (groups even alone); 6 inputs (a block of 4, then 2); rows [2, 37), a partial last group.
TEST_P(EveryIsa, GemvGivesTheSameBitsWhateverTheLayoutOrBatch) {
  const CpuKernels& k = kernels_under_test(GetParam());
  std::vector<std::pair<int64_t, int64_t>> shapes = {
      {32, 4640}, {64, 4160}, {256, 2304}, {32, 8224}};
  for (int64_t bs : {32, 64, 256})
    for (int64_t K : gemv_row_lengths(bs))
      shapes.emplace_back(bs, K);
  const int64_t N = 37, M = 6, first_row = 2;
  for (bool bf16 : {false, true})
    for (auto [bs, K] : shapes) {
      const at::Tensor w = randn({N, K}, 31 + bs);
      const at::Tensor x = randn({M, K}, 37 + K).to(at::kBFloat16).to(at::kFloat);
      const FourBitWeight q =
          quantize_4bit(w, FourBitSettings{QuantType::FP4, false, bs, DType::F32}, k);
      const at::Tensor rows = interleave_rows(q.packed, q.absmax, N, K, bs);
      const std::vector<float> table = bf16_table(QuantType::FP4);
      const FourBitRows apart = rows_of(q, K, bs);
      const FourBitRows together = interleaved_rows(rows, K, bs);
      const std::string where = GetParam() + (bf16 ? " bf16" : " fp32") +
                                " bs=" + std::to_string(bs) + " K=" + std::to_string(K);
      const at::Tensor arranged = arranged_for_gemv(k, x, bf16);
      const at::Tensor batch = gemv_of(k, bf16, arranged, apart, bs, table.data(), first_row, N, N);
      EXPECT_TRUE(
          at::equal(batch, gemv_of(k, bf16, arranged, together, bs, table.data(), first_row, N, N)))
          << where;
      for (int64_t m = 0; m < M; ++m) {
        const at::Tensor alone = arranged_for_gemv(k, x.narrow(0, m, 1), bf16);
        for (const FourBitRows& layout : {apart, together})
          EXPECT_TRUE(at::equal(
              gemv_of(k, bf16, alone, layout, bs, table.data(), first_row, N, N)[0], batch[m]))
              << where << " input " << m;
      }
      const at::Tensor dense =
          dequantize_4bit(q.packed, q.absmax, N * K, bs, table.data(), scalar_kernels())
              .view({N, K});
      const at::Tensor want = at::matmul(x.to(at::kDouble), dense.to(at::kDouble).t());
      EXPECT_LT(relative_error(batch.narrow(1, first_row, N - first_row),
                               want.narrow(1, first_row, N - first_row)),
                1e-6)
          << where;
      EXPECT_EQ(batch.narrow(1, 0, first_row).abs().max().item<float>(), 0.0f) << where;
    }
}

// Batched matmuls: decode a tile of weight rows x kc columns, multiply it with inputs arranged
// the same way, then add a second pass on top (accumulate).
TEST_P(EveryIsa, TileMultiplyMatchesDenseMath) {
  const CpuKernels& k = kernels_under_test(GetParam());
  const int64_t N = 15, K = 640;
  for (int64_t bs : {32, 64})
    for (int64_t kc : {bs, int64_t{320}}) {
      const at::Tensor w = randn({N, K}, 61 + bs);
      const FourBitWeight q =
          quantize_4bit(w, FourBitSettings{QuantType::FP4, false, bs, DType::F32}, k);
      const FourBitCodebook book = codebook(QuantType::FP4);
      const at::Tensor dense =
          dequantize_4bit(q.packed, q.absmax, N * K, bs, book.table, scalar_kernels()).view({N, K});
      for (int64_t M : {1, 2, 3, 4, 5, 7, 16, 17, 40})
        for (int64_t rows : {1, 3, 4, 5, 9, 15}) {
          const at::Tensor x = randn({M, K}, 67 + M);
          const int64_t groups = (M + kTileInputGroup - 1) / kTileInputGroup;
          at::Tensor arranged = at::empty({groups * kTileInputGroup, K});
          k.arrange_tile_inputs(x.data_ptr<float>(), M, K, arranged.data_ptr<float>());
          // Columns [kc, 2 kc) of the first `rows` rows, into a tile; y has one spare column.
          at::Tensor tile = at::empty({rows, kc});
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t first_block = (r * K + kc) / bs;
            k.decode_tile(q.packed.data_ptr<uint8_t>(), q.absmax.data_ptr<float>(), bs, book.table,
                          first_block, first_block + kc / bs, tile.data_ptr<float>() + r * kc);
          }
          at::Tensor y = at::full({M, rows + 1}, 7.0f);
          for (bool accumulate : {false, true})
            k.gemm_tile(arranged.data_ptr<float>(), M, K, kc, tile.data_ptr<float>(), rows, kc,
                        y.data_ptr<float>(), rows + 1, accumulate);
          const at::Tensor want =
              2 * at::matmul(x.narrow(1, kc, kc).to(at::kDouble),
                             dense.narrow(0, 0, rows).narrow(1, kc, kc).to(at::kDouble).t());
          EXPECT_LT(relative_error(y.narrow(1, 0, rows), want), 1e-6)
              << GetParam() << " bs=" << bs << " kc=" << kc << " M=" << M << " rows=" << rows;
          EXPECT_TRUE(at::all(y.select(1, rows) == 7.0f).item<bool>());
        }
    }
}

// Batched bfloat16 matmuls on AMX tiles (sets without AMX skip): the weights dequantized with the
// exact table and rounded to bfloat16, float32 sums. K = 1056 ends on a short panel (33 k-steps);
// blocksize 2048 spans panels; 45 rows end on a partial block of 32; 17, 33, 70 inputs end on
// partial groups.
TEST_P(EveryIsa, AmxMatmulMatchesBfloat16DenseMath) {
  const CpuKernels& k = kernels_under_test(GetParam());
  if (k.matmul_4bit_amx == nullptr) GTEST_SKIP() << GetParam() << " has no AMX matmul";
  const int64_t N = 45;
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (int64_t bs : {32, 64, 2048})
      for (int64_t K : {64, 1056, 4096}) {
        if (K % bs != 0) continue;
        const at::Tensor w = randn({N, K}, 71 + bs);
        const FourBitWeight q = quantize_4bit(w, FourBitSettings{type, false, bs, DType::F32}, k);
        const FourBitCodebook book = codebook(type);
        const at::Tensor dense =
            dequantize_4bit(q.packed, q.absmax, N * K, bs, book.table, scalar_kernels())
                .view({N, K})
                .to(at::kBFloat16)
                .to(at::kDouble);
        for (int64_t M : {1, 16, 17, 33, 70}) {
          const at::Tensor x = randn({M, K}, 73 + M).to(at::kBFloat16).to(at::kFloat);
          std::vector<uint16_t> arranged(static_cast<size_t>(amx_input_words(M, K)), 0xFFFF);
          k.arrange_inputs_amx(x.data_ptr<float>(), M, K, arranged.data());
          at::Tensor y = at::zeros({M, N});
          // Rows [3, 42): the first and last rows stay untouched.
          k.matmul_4bit_amx(arranged.data(), M, K, q.packed.data_ptr<uint8_t>(),
                            q.absmax.data_ptr<float>(), bs, book.table, 3, 42, y.data_ptr<float>(),
                            N);
          const at::Tensor want = at::matmul(x.to(at::kDouble), dense.t());
          EXPECT_LT(relative_error(y.narrow(1, 3, 39), want.narrow(1, 3, 39)), 2e-6)
              << GetParam() << " bs=" << bs << " K=" << K << " M=" << M;
          EXPECT_EQ(y.narrow(1, 0, 3).abs().max().item<float>(), 0.0f);
          EXPECT_EQ(y.narrow(1, 42, 3).abs().max().item<float>(), 0.0f);
        }
      }
}

// Exact int32 sums on every path: K not a multiple of 64 (masked tails), 4-row register blocks
// plus single rows, 1-8 inputs (the GEMV sizes) and more (AMX tiles in whole blocks of 32 rows,
// inputs padded to groups of 32; the VNNI matmul for the rows left over), a row range whose edges
// stay untouched, and extreme codes (-127 x 127 in every product: the unsigned-input correction
// of vpdpbusd at its largest).
TEST_P(EveryIsa, Int8MatmulIsExactInteger) {
  const CpuKernels& k = kernels_under_test(GetParam());
  at::Generator gen = at::detail::createCPUGenerator(5);
  const auto int8 = at::TensorOptions().dtype(at::kChar);
  struct Case {
    int64_t M, K, first_row, last_row, rows;
  };
  for (const Case& c : std::vector<Case>{{3, 1, 0, 7, 7},
                                         {3, 15, 0, 7, 7},
                                         {3, 16, 0, 7, 7},
                                         {3, 33, 0, 7, 7},
                                         {3, 300, 0, 7, 7},
                                         {1, 4096, 0, 9, 9},
                                         {8, 200, 1, 10, 11},
                                         {9, 64, 3, 71, 74},
                                         {17, 1088, 3, 71, 74},
                                         {6, 128, 0, 32, 32},
                                         {40, 320, 0, 64, 64},
                                         {70, 4160, 5, 50, 52}})
    for (bool extreme : {false, true}) {
      at::Tensor a = at::randint(-127, 128, {c.M, c.K}, gen, int8);
      at::Tensor b = at::randint(-127, 128, {c.rows, c.K}, gen, int8);
      if (extreme) {
        a.fill_(-127);
        b.fill_(127);
      }
      // The row sums a loaded layer computes once, checked against LibTorch's.
      at::Tensor row_sums = at::empty({c.rows}, at::TensorOptions().dtype(at::kInt));
      int8_row_sums(b.data_ptr<int8_t>(), c.K, 0, c.rows, row_sums.data_ptr<int32_t>());
      ASSERT_TRUE(at::equal(row_sums.to(at::kLong), b.to(at::kLong).sum(1)));
      at::Tensor out = at::full({c.M, c.rows}, 7, at::TensorOptions().dtype(at::kInt));
      k.int8_matmul(a.data_ptr<int8_t>(), c.M, c.K, b.data_ptr<int8_t>(),
                    row_sums.data_ptr<int32_t>(), c.first_row, c.last_row, out.data_ptr<int32_t>(),
                    c.rows);
      const int64_t count = c.last_row - c.first_row;
      const at::Tensor want =
          at::matmul(a.to(at::kLong), b.narrow(0, c.first_row, count).to(at::kLong).t());
      EXPECT_TRUE(at::equal(out.narrow(1, c.first_row, count).to(at::kLong), want))
          << GetParam() << " M=" << c.M << " K=" << c.K << " rows [" << c.first_row << ", "
          << c.last_row << ") extreme=" << extreme;
      EXPECT_TRUE(at::all(out.narrow(1, 0, c.first_row) == 7).item<bool>()) << GetParam();
      EXPECT_TRUE(at::all(out.narrow(1, c.last_row, c.rows - c.last_row) == 7).item<bool>())
          << GetParam();
    }
}

// x.to(float16) as LibTorch rounds it: ties to even (odd multiples of half a float16 step), the
// float16 subnormals, the edge of its range (65504 stays, 65520 overflows), infinities and NaN,
// for lengths with every tail.
TEST_P(EveryIsa, RoundToFloat16IsWhatATensorInFloat16Holds) {
  const CpuKernels& k = kernels_under_test(GetParam());
  std::vector<float> special{1.0f + 1.0f / 2048,
                             1.0f + 3.0f / 2048,
                             -(1.0f + 1.0f / 2048),
                             65504.0f,
                             65519.0f,
                             65520.0f,
                             -70000.0f,
                             3e-8f,
                             -2.98e-8f,
                             6.1e-5f,
                             1e-30f,
                             0.0f,
                             -0.0f,
                             INFINITY,
                             -INFINITY,
                             std::nanf("")};
  for (int64_t n : {1, 7, 8, 15, 16, 17, 100, 1027}) {
    at::Tensor x = randn({n}, 90 + n) * 100.0;
    for (int64_t i = 0; i < n; ++i)
      if (i % 3 == 0) x[i] = special[static_cast<size_t>(i / 3) % special.size()];
    at::Tensor got = at::full({n + 1}, 7.0f);  // the element past the end stays
    k.round_to_float16(x.data_ptr<float>(), n, got.data_ptr<float>());
    const at::Tensor want = x.to(at::kHalf).to(at::kFloat);
    EXPECT_TRUE(at::equal(at::isnan(got.narrow(0, 0, n)), at::isnan(want))) << GetParam();
    EXPECT_TRUE(at::equal(got.narrow(0, 0, n).nan_to_num(0.0), want.nan_to_num(0.0)))
        << GetParam() << " n=" << n;
    EXPECT_EQ(got[n].item<float>(), 7.0f) << GetParam();
  }
}

// Double quantization's scales: bit for bit LibTorch's float32 multiply, then add (what
// bitsandbytes computes), for any run of blocks (the vector sets decode 64 at a time, the rest one
// by one).
TEST_P(EveryIsa, NestedScalesDecodeAsAFloat32MultiplyThenAdd) {
  const CpuKernels& k = kernels_under_test(GetParam());
  const int64_t n = 1203;  // four nested blocks of 256 and part of a fifth
  at::Generator gen = at::detail::createCPUGenerator(97);
  const at::Tensor codes = at::randint(256, {n}, gen, at::TensorOptions().dtype(at::kByte));
  const at::Tensor map = randn({256}, 98) * at::exp(randn({256}, 99) * 4);  // values of any size
  const at::Tensor nested = randn({5}, 100).abs() + 0.01;
  const float offset = 0.0371f;
  const at::Tensor want = map.index_select(0, codes.to(at::kLong)) *
                              nested.repeat_interleave(kNestedBlocksize).narrow(0, 0, n) +
                          at::full({1}, offset);
  const NestedScaleMap prepared = nested_scale_map(map.data_ptr<float>());
  for (const auto& [first, last] : std::vector<std::pair<int64_t, int64_t>>{
           {0, n}, {1, n}, {63, 700}, {64, 128}, {250, 260}, {1000, n}, {5, 5}}) {
    at::Tensor got = at::full({last - first + 1}, 7.0f);  // the value past the run stays
    k.decode_nested_scales(codes.data_ptr<uint8_t>(), nested.data_ptr<float>(), prepared, offset,
                           first, last, got.data_ptr<float>());
    EXPECT_TRUE(
        testing::same_bytes(got.narrow(0, 0, last - first), want.narrow(0, first, last - first)))
        << GetParam() << " blocks " << first << "-" << last;
    EXPECT_EQ(got[last - first].item<float>(), 7.0f) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, EveryIsa, ::testing::ValuesIn(isas_under_test()));

// ---- the LinearKernel objects ---------------------------------------------------------------

TEST(FourBitKernel, EveryPathComputesXTimesTheDequantizedWeight) {
  const QuantConfig cfg = config(
      "bitsandbytes_4bit", {{"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", true}});
  // 2112: three tiles along a row (1024, 1024, 64); 172: blocks straddle rows, the fallback.
  for (int64_t K : {256, 2112, 172}) {
    const at::Tensor w = randn({100, K}, 3), bias = randn({100}, 4);
    auto kernel = loaded_kernel(cfg, w, bias);
    const at::Tensor dense = kernel->dequantize(DType::F32);
    EXPECT_LT(relative_error(dense, w), 0.12);  // 4-bit NF4 on Gaussian weights
    // The GEMV for batches up to the set's max_gemv_inputs (16 or 24), the tiles beyond.
    for (int64_t M : {1, 7, 16, 17, 25, 200}) {
      const at::Tensor x = randn({M, K}, 9 + M);
      const at::Tensor want =
          at::linear(x.to(at::kDouble), dense.to(at::kDouble), bias.to(at::kDouble));
      EXPECT_LT(relative_error(kernel->apply(x), want), 1e-5) << "K=" << K << " M=" << M;
    }
    // Leading dimensions and the activation dtype are kept.
    const at::Tensor x3 = randn({2, 3, K}, 1).to(at::kBFloat16);
    const at::Tensor y3 = kernel->apply(x3);
    EXPECT_EQ(y3.sizes().vec(), (std::vector<int64_t>{2, 3, 100}));
    EXPECT_EQ(y3.scalar_type(), at::kBFloat16);
  }
}

TEST(FourBitKernel, SixteenBitComputeDtypesRoundAsTransformersDoes) {
  // Linear4bit casts the input to bnb_4bit_compute_dtype and the result comes back in it. The
  // weight values come in two ways. One input: gemv_4bit looks the code values up in the compute
  // dtype, y = round(round(x) · (table_c[code] · absmax)ᵀ + bias_c); the GEMV and the float32
  // tiles use that for every batch. Batches in transformers: MatMul4Bit dequantizes, casts to the
  // compute dtype and multiplies, weights round(table[code] · absmax); the AMX matmuls do that.
  const CpuKernels& kernels = cpu_kernels();
  for (const char* dtype : {"bfloat16", "float16"}) {
    const at::ScalarType st = std::string(dtype) == "bfloat16" ? at::kBFloat16 : at::kHalf;
    const QuantConfig cfg = config(
        "bitsandbytes_4bit", {{"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_compute_dtype", dtype}});
    const int64_t N = 64, K = 256;
    const at::Tensor w = randn({N, K}, 51), bias = randn({N}, 52);
    auto kernel = loaded_kernel(cfg, w, bias);
    // dequantize() exports the exact float32 values; the matmuls use the compute dtype's.
    const at::Tensor exact = kernel->dequantize(DType::F32);
    const FourBitWeight q =
        quantize_4bit(w, FourBitSettings{QuantType::NF4, false, 64, DType::F32}, scalar_kernels());
    const FourBitCodebook book = codebook(QuantType::NF4);
    const at::Tensor table =
        at::from_blob(const_cast<float*>(book.table), {16}, at::TensorOptions().dtype(at::kFloat))
            .to(st)
            .to(at::kFloat)
            .contiguous();
    const at::Tensor looked_up =
        dequantize_4bit(q.packed, q.absmax, N * K, 64, table.data_ptr<float>(), scalar_kernels())
            .view({N, K});
    EXPECT_TRUE(at::equal(
        exact,
        dequantize_4bit(q.packed, q.absmax, N * K, 64, book.table, scalar_kernels()).view({N, K})));
    const at::Tensor cast = exact.to(st).to(at::kFloat);
    // 1, 5: the GEMV; 40: the GEMV for bfloat16 with AVX512-BF16, else tiles; 600: tiles (AMX with
    // bfloat16 where the processor has it).
    for (int64_t M : {1, 5, 40, 600}) {
      const bool on_amx = st == at::kBFloat16 && kernels.matmul_4bit_amx != nullptr &&
                          M > kernels.max_gemv_inputs_bf16;
      const at::Tensor& used = on_amx ? cast : looked_up;
      const at::Tensor x = randn({M, K}, 53 + M);
      const at::Tensor y = kernel->apply(x);
      EXPECT_EQ(y.scalar_type(), at::kFloat);
      EXPECT_TRUE(at::equal(y, y.to(st).to(at::kFloat))) << dtype << ": not rounded, M=" << M;
      // The layer rounds inputs and results as the casts would: rounding x first, or passing it
      // in the compute dtype, changes nothing.
      EXPECT_TRUE(at::equal(y, kernel->apply(x.to(st).to(at::kFloat)))) << dtype << " M=" << M;
      EXPECT_TRUE(at::equal(y.to(st), kernel->apply(x.to(st)))) << dtype << " M=" << M;
      const at::Tensor want =
          at::linear(x.to(st).to(at::kDouble), used.to(at::kDouble), bias.to(st).to(at::kDouble));
      // Within one unit in the last place of the compute dtype: float32 sums may round a value
      // near a midpoint the other way.
      const double ulp = st == at::kBFloat16 ? 1.0 / 128 : 1.0 / 1024;
      // (Relative to the outputs' typical size where a sum cancels to a small value.)
      const at::Tensor scale = want.abs().clamp_min(want.abs().mean().item<double>());
      EXPECT_LE(((y.to(at::kDouble) - want).abs() / scale).max().item<double>(), ulp)
          << dtype << " M=" << M << (on_amx ? " (AMX)" : "");
    }
  }
}

TEST(FourBitKernel, RejectsNonFiniteWeightsNamingTheLayer) {
  const QuantConfig cfg = config("bitsandbytes_4bit", {});
  at::Tensor w = randn({8, 64}, 1);
  w[3][5] = std::numeric_limits<float>::quiet_NaN();
  try {
    loaded_kernel(cfg, w, at::Tensor());
    FAIL() << "NaN weights must be refused";
  } catch (const KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("'test.layer'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NaN or infinite"), std::string::npos);
  }
}

// The buffers every matmul streams (4-bit codes and their scales, int8 codes) are weight memory:
// 2 MiB-aligned huge-page candidates (a cold GEMV over 4 KiB pages was 15-30% slower).
TEST(BnbKernels, StreamedWeightsAreInHugePageMemory) {
  const at::Tensor w = randn({2048, 4096}, 41);  // 4 MiB of 4-bit codes, 8 MiB of int8 codes
  const auto aligned = [](const at::Tensor& t) {
    return reinterpret_cast<uintptr_t>(t.data_ptr()) % (2u << 20) == 0;
  };
  const QuantConfig nf4 = config(
      "bitsandbytes_4bit", {{"bnb_4bit_quant_type", "nf4"}, {"bnb_4bit_use_double_quant", true}});
  const QuantConfig int8 = config("bitsandbytes_8bit", {});
  for (const QuantConfig* cfg : {&nf4, &int8}) {
    auto kernel = loaded_kernel(*cfg, w, at::Tensor());
    int weights = 0;
    for (const auto& [name, tensor] : kernel->tensors())
      if (name == "weight") {
        ++weights;
        EXPECT_TRUE(aligned(tensor)) << cfg->quant_method();
      }
    EXPECT_EQ(weights, 1) << cfg->quant_method();  // the check above ran
  }
}

TEST(EightBitKernel, MatchesDequantizedMathWithAndWithoutOutliers) {
  const at::Tensor w = randn({64, 128}, 21) * 0.05, bias = randn({64}, 22);
  for (double threshold : {0.0, 6.0}) {
    const QuantConfig cfg = config("bitsandbytes_8bit", {{"llm_int8_threshold", threshold}});
    auto kernel = loaded_kernel(cfg, w, bias);
    const at::Tensor dense = kernel->dequantize(DType::F32);
    EXPECT_LT(relative_error(dense, w), 0.01);
    at::Tensor x = randn({5, 128}, 23);
    x.select(1, 7).mul_(20.0);  // a column of outliers (|x| >= 6 in some rows)
    const at::Tensor y = kernel->apply(x);
    const at::Tensor want =
        at::linear(x.to(at::kDouble), dense.to(at::kDouble), bias.to(at::kDouble));
    // Int8 activations cost a little precision; the outlier column must not blow it up.
    const double err = relative_error(y, want);
    EXPECT_LT(err, threshold > 0 ? 0.01 : 0.05) << "threshold " << threshold;
  }
}

TEST(EightBitKernel, OutlierDecompositionHelpsWithLargeActivations) {
  const at::Tensor w = randn({64, 256}, 31) * 0.05;
  at::Tensor x = randn({4, 256}, 32);
  x.select(1, 11).mul_(100.0);
  const at::Tensor want = at::linear(x.to(at::kDouble), w.to(at::kDouble));
  const double with = relative_error(
      loaded_kernel(config("bitsandbytes_8bit", {{"llm_int8_threshold", 6.0}}), w, at::Tensor())
          ->apply(x),
      want);
  const double without = relative_error(
      loaded_kernel(config("bitsandbytes_8bit", {{"llm_int8_threshold", 0.0}}), w, at::Tensor())
          ->apply(x),
      want);
  EXPECT_LT(with, without / 2) << "with " << with << " without " << without;
}

// bitsandbytes' LLM.int8 inference (MatMul8bitLt without gradients: int8_vectorwise_quant of
// x.to(float16), then int8_mixed_scaled_mm) step by step in LibTorch operations as upstream writes
// them, with the CUDA kernel's 1/127^2. Thresholds in the tests are exact in float16.
at::Tensor bitsandbytes_int8_linear(const at::Tensor& x, const at::Tensor& cb,
                                    const at::Tensor& scb, const at::Tensor& bias,
                                    double threshold) {
  const at::Tensor a = x.to(at::kHalf).to(at::kFloat);
  at::Tensor inliers = a;
  at::Tensor columns = at::empty({0}, at::TensorOptions().dtype(at::kLong));
  if (threshold > 0) {
    const at::Tensor outliers = a.abs() >= threshold;
    columns = outliers.any(0).nonzero().view(-1);
    inliers = a.masked_fill(outliers, 0.0);
  }
  const at::Tensor row_stats = std::get<0>(inliers.abs().max(1));
  // Python's `127.0 / row_stats` is reciprocal(row_stats) * 127.
  at::Tensor ca = (inliers * (row_stats.reciprocal() * 127.0).unsqueeze(1)).round().to(at::kChar);
  ca.index_fill_(1, columns, 0);
  // Exact integers in float32 for these sizes (|sum| < 2^24).
  const at::Tensor sums = at::matmul(ca.to(at::kFloat), cb.to(at::kFloat).t());
  at::Tensor y = sums * (row_stats.unsqueeze(1) * scb.unsqueeze(0)) * 6.200012e-05;
  if (bias.defined()) y = y + bias;
  y = y.to(x.scalar_type());
  if (columns.numel() == 0) return y;
  const at::Tensor w_columns =
      (cb.index_select(1, columns).to(at::kFloat) * scb.unsqueeze(1) * 7.874015718698502e-3)
          .to(x.scalar_type());
  if (x.scalar_type() != at::kHalf) return y.addmm(x.index_select(1, columns), w_columns.t());
  // The float16 addmm as a GPU computes it (LibTorch 1.13 has none on the CPU): float32 sums of
  // the float16 operands, rounded once.
  return y.to(at::kFloat)
      .addmm(x.index_select(1, columns).to(at::kFloat), w_columns.to(at::kFloat).t())
      .to(at::kHalf);
}

// Inputs where the outlier rules matter: column 7 has an outlier in row 0 only, and row 3's largest
// value sits below the threshold in that same column (it counts towards row 3's absmax: only the
// outlier elements are left out, not their columns); column 30 holds a value exactly at the
// threshold; the last row has an outlier of its own.
at::Tensor int8_test_inputs(int64_t M, int64_t K, uint64_t seed) {
  at::Tensor x = randn({M, K}, seed);
  x[0][7] = 20.0;
  if (M > 3) x[3][7] = 5.5;
  if (M > 4) x[4][30] = -6.0;
  if (M > 5) x[M - 1][60] = -9.0;  // in the second thread's rows when the inputs are split
  return x;
}

TEST(EightBitKernel, InferenceIsBitsandbytesBitForBit) {
  // The most inputs are split between two threads, whose outlier columns are merged.
  const testing::ThreadCount two_threads(2);
  const int64_t split_between_threads = 2 * kMinValuesPerThread / 128;
  const at::Tensor w = randn({48, 128}, 51) * 0.05, bias = randn({48}, 52);
  for (double threshold : {6.0, 2.5, 0.0})
    for (const bool with_bias : {true, false})
      for (int64_t M : {int64_t{1}, int64_t{6}, split_between_threads}) {
        const at::Tensor b = with_bias ? bias : at::Tensor();
        const QuantConfig cfg = config("bitsandbytes_8bit", {{"llm_int8_threshold", threshold}});
        auto kernel = loaded_kernel(cfg, w, b);
        const at::Tensor cb = tensor_named(*kernel, "weight"), scb = tensor_named(*kernel, "SCB");
        for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
          const at::Tensor x = int8_test_inputs(M, 128, 53 + M).to(dtype);
          const at::Tensor got = kernel->apply(x);
          const at::Tensor want = bitsandbytes_int8_linear(x, cb, scb, b, threshold);
          ASSERT_EQ(got.scalar_type(), dtype);
          EXPECT_TRUE(at::equal(got, want))
              << "threshold " << threshold << " bias " << with_bias << " M " << M << " " << dtype
              << ": max difference " << (got - want).abs().max().item<float>();
        }
      }
}

TEST(EightBitKernel, AnEmptyBatchGivesAnEmptyOutput) {
  auto kernel = loaded_kernel(config("bitsandbytes_8bit", {}), randn({48, 128}, 71), at::Tensor());
  const at::Tensor y = kernel->apply(at::empty({2, 0, 128}));
  EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{2, 0, 48}));
}

// Non-finite inputs spoil only their own row, as in dense math: an infinity (an outlier) through
// the full-precision columns, a NaN (never an outlier) through its row's scale.
TEST(EightBitKernel, NonFiniteInputsSpoilOnlyTheirRow) {
  const at::Tensor w = randn({48, 128}, 61) * 0.05;
  for (double threshold : {6.0, 0.0}) {
    auto kernel = loaded_kernel(config("bitsandbytes_8bit", {{"llm_int8_threshold", threshold}}), w,
                                at::Tensor());
    const at::Tensor cb = tensor_named(*kernel, "weight"), scb = tensor_named(*kernel, "SCB");
    at::Tensor x = int8_test_inputs(6, 128, 62);
    x[2][11] = std::numeric_limits<float>::quiet_NaN();
    if (threshold > 0) x[5][90] = std::numeric_limits<float>::infinity();
    const at::Tensor got = kernel->apply(x);
    EXPECT_TRUE(at::isnan(got[2]).all().item<bool>()) << "threshold " << threshold;
    const at::Tensor finite_rows = at::tensor({0, 1, 3, 4}, at::TensorOptions().dtype(at::kLong));
    const at::Tensor want = bitsandbytes_int8_linear(x, cb, scb, at::Tensor(), threshold);
    EXPECT_TRUE(at::equal(got.index_select(0, finite_rows), want.index_select(0, finite_rows)))
        << "threshold " << threshold;
    if (threshold > 0) EXPECT_FALSE(at::isfinite(got[5]).all().item<bool>());
  }
}

}  // namespace
}  // namespace qplug::bnb
