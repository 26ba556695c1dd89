// A non-nested 4-bit weight whose rows are whole blocks lives in the interleaved layout (each
// row's codes, then its float32 scales): the layout holds exactly the checkpoint's bytes, gives
// them back unchanged (tensors(), dequantize), and the layer multiplies as the separate tensors do.
// The kernels' side (every ISA's GEMV on both layouts) is in test_bnb_kernels.cpp, and the nested
// scales tests compare these layers with double-quantized ones byte for byte.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>
#include <string>
#include <vector>

#include "bnb_config.hpp"
#include "bnb_test_layers.hpp"
#include "code_tables.hpp"
#include "interleaved_rows.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels_under_test.hpp"
#include "quantize_4bit.hpp"
#include "vectors.hpp"

namespace qplug::bnb {
namespace {

// Random codes and scales for `rows` rows of K weights in blocks of `bs`.
struct SeparateRows {
  at::Tensor packed, absmax;
};
SeparateRows separate_rows(int64_t rows, int64_t K, int64_t bs, uint64_t seed) {
  const at::Tensor r = randn({rows * (K / 2 + K / bs)}, seed);
  SeparateRows s;
  s.packed = (r.narrow(0, 0, rows * K / 2).abs() * 97).remainder(256).to(at::kByte).view({-1, 1});
  s.absmax = r.narrow(0, rows * K / 2, rows * (K / bs)).abs().contiguous();
  return s;
}

TEST(BnbInterleavedRows, HoldEachRowsCodesThenItsScalesAndSplitBackExactly) {
  for (const auto& [K, bs] :
       std::vector<std::pair<int64_t, int64_t>>{{96, 32}, {640, 64}, {512, 256}}) {
    const int64_t rows = 37, blocks = K / bs;
    const SeparateRows s = separate_rows(rows, K, bs, 3 + K);
    const at::Tensor together = interleave_rows(s.packed, s.absmax, rows, K, bs);
    ASSERT_EQ(together.sizes().vec(), (std::vector<int64_t>{rows, interleaved_row_bytes(K, bs)}));
    EXPECT_EQ(interleaved_row_bytes(K, bs), K / 2 + 4 * blocks);
    const uint8_t* bytes = together.data_ptr<uint8_t>();
    for (int64_t o : {int64_t{0}, int64_t{17}, rows - 1}) {
      const uint8_t* row = bytes + o * interleaved_row_bytes(K, bs);
      EXPECT_EQ(std::memcmp(row, s.packed.data_ptr<uint8_t>() + o * K / 2, K / 2), 0) << o;
      EXPECT_EQ(std::memcmp(row + K / 2, s.absmax.data_ptr<float>() + o * blocks, 4 * blocks), 0)
          << o;
    }
    const auto [packed, absmax] = split_rows(together, K, bs);
    EXPECT_EQ(packed.sizes().vec(), s.packed.sizes().vec());
    EXPECT_EQ(absmax.sizes().vec(), s.absmax.sizes().vec());
    EXPECT_TRUE(testing::same_bytes(packed, s.packed)) << "K=" << K << " bs=" << bs;
    EXPECT_TRUE(testing::same_bytes(absmax, s.absmax)) << "K=" << K << " bs=" << bs;

    // Rows 5 to 12 copied apart: what the AMX matmul reads.
    const FourBitRows from5 = rows_from(interleaved_rows(together, K, bs), 5);
    std::vector<uint8_t> codes(8 * K / 2);
    std::vector<float> scales(8 * blocks);
    copy_rows_apart(from5, 8, K, bs, codes.data(), scales.data());
    EXPECT_EQ(std::memcmp(codes.data(), s.packed.data_ptr<uint8_t>() + 5 * K / 2, codes.size()), 0);
    EXPECT_EQ(
        std::memcmp(scales.data(), s.absmax.data_ptr<float>() + 5 * blocks, 4 * scales.size()), 0);
  }
}

// Quantizing while loading writes the rows directly: the same bytes as quantizing to the separate
// tensors and interleaving them, with every kernel set.
TEST(BnbInterleavedRows, QuantizingStraightIntoRowsGivesTheInterleavedCheckpointBytes) {
  for (const std::string& isa : isas_under_test())
    for (QuantType type : {QuantType::NF4, QuantType::FP4})
      for (const auto& [K, bs] : std::vector<std::pair<int64_t, int64_t>>{{96, 32}, {512, 256}}) {
        const int64_t rows = 23;
        const at::Tensor w = randn({rows, K}, 7 + K);
        const FourBitSettings s{type, false, bs, DType::F32};
        const CpuKernels& k = kernels_under_test(isa);
        const FourBitWeight apart = quantize_4bit(w, s, k);
        EXPECT_TRUE(testing::same_bytes(quantize_4bit_rows(w, s, k),
                                        interleave_rows(apart.packed, apart.absmax, rows, K, bs)))
            << isa << " K=" << K << " bs=" << bs;
      }
}

QuantConfig nf4(const std::string& compute_dtype, int64_t blocksize) {
  return config("bitsandbytes_4bit", {{"bnb_4bit_quant_type", "nf4"},
                                      {"bnb_4bit_use_double_quant", false},
                                      {"bnb_4bit_compute_dtype", compute_dtype},
                                      {"blocksize", blocksize}});
}

// Quantized while loading and reloaded from what it saved: the same checkpoint bytes both times,
// the dequantized weight of those bytes, and products as dense math on that weight gives them (the
// GEMV at 1 and 5 inputs, the tiles, or AMX, at 40). Rows of 512 are interleaved; rows of 6272,
// longer than kMaxInterleavedK, stay two tensors.
TEST(BnbInterleavedRows, ALayerSavesTheCodesAndScalesItQuantizedAndMultipliesWithThem) {
  for (const int64_t in : {512, 6272})
    for (const std::string dtype : {"float32", "bfloat16"}) {
      SCOPED_TRACE("in " + std::to_string(in));
      const int64_t out = 70;
      const at::Tensor w = randn({out, in}, 5);
      const QuantConfig cfg = nf4(dtype, 128);
      const FourBitWeight want = quantize_4bit(w, four_bit_settings(cfg), cpu_kernels());
      const auto quantized = loaded_kernel(cfg, w, at::Tensor());
      const auto reloaded = prequantized_kernel(cfg, out, in, quantized->tensors());
      for (const auto* layer : {quantized.get(), reloaded.get()}) {
        EXPECT_TRUE(testing::same_bytes(tensor_named(*layer, "weight"), want.packed)) << dtype;
        EXPECT_TRUE(testing::same_bytes(tensor_named(*layer, "weight.absmax"), want.absmax))
            << dtype;
      }
      const at::Tensor dense = dequantize_4bit(want.packed, want.absmax, out * in, 128,
                                               four_bit_table(QuantType::NF4).data(), cpu_kernels())
                                   .view({out, in});
      EXPECT_TRUE(testing::same_bytes(reloaded->dequantize(DType::F32), dense));
      for (const int64_t M : {1, 5, 40}) {
        const at::Tensor x = randn({M, in}, 9 + M);
        const at::Tensor y = reloaded->apply(x);
        EXPECT_TRUE(testing::same_bytes(quantized->apply(x), y)) << dtype << " M=" << M;
        const at::Tensor exact = at::matmul(x.to(at::kDouble), dense.to(at::kDouble).t());
        const double error = ((y.to(at::kDouble) - exact).norm() / exact.norm()).item<double>();
        EXPECT_LT(error, dtype == "float32" ? 1e-5 : 2e-2) << dtype << " M=" << M;
      }
    }
}

}  // namespace
}  // namespace qplug::bnb
