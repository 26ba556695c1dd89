// The bnb layers give the same bits whatever number of threads at::parallel_for splits their work
// between: quantizing (4-bit, with and without double quantization; 8-bit), every matmul path
// (the GEMV, the float32 tiles, AMX where the processor has it, the int8 matmul with and without
// outliers) and dequantizing. Shapes are large enough that every parallel range is split.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "bnb_test_layers.hpp"
#include "int8_activations.hpp"
#include "thread_count.hpp"

namespace qplug::bnb {
namespace {

using testing::expect_same_bits_on_more_threads;

// 100 x 2112 weights: 211200 values, above the quantizer's 65536 per task; rows that end in a
// shorter GEMV chunk and a partial tile; 100 rows split unevenly in tasks of 8, 16 and 32 rows.
constexpr int64_t kOut = 100, kIn = 2112;

std::vector<at::Tensor> saved_tensors(const LinearKernel& kernel) {
  std::vector<at::Tensor> out;
  for (const auto& [name, tensor] : kernel.tensors())
    out.push_back(tensor);
  return out;
}

TEST(BnbThreads, FourBitQuantizationIsTheSameOnMoreThreads) {
  // 160 rows: 5280 blocks of 64, so double quantization has 21 blocks of 256 to split.
  const at::Tensor w = randn({160, kIn}, 1);
  for (const char* type : {"nf4", "fp4"})
    for (const bool nested : {false, true}) {
      const QuantConfig cfg = config("bitsandbytes_4bit", {{"bnb_4bit_quant_type", type},
                                                           {"bnb_4bit_use_double_quant", nested}});
      expect_same_bits_on_more_threads(
          [&] { return saved_tensors(*loaded_kernel(cfg, w, at::Tensor())); },
          std::string(type) + (nested ? " with double quantization" : ""));
    }
}

TEST(BnbThreads, FourBitMatmulsAreTheSameOnMoreThreads) {
  const at::Tensor w = randn({kOut, kIn}, 2), bias = randn({kOut}, 3);
  for (const bool nested : {false, true})
    for (const char* dtype : {"float32", "bfloat16"}) {
      const QuantConfig cfg = config("bitsandbytes_4bit", {{"bnb_4bit_quant_type", "nf4"},
                                                           {"bnb_4bit_compute_dtype", dtype},
                                                           {"bnb_4bit_use_double_quant", nested}});
      const auto kernel = loaded_kernel(cfg, w, bias);
      const std::string what =
          std::string(dtype) + (nested ? " compute, double quantization" : " compute");
      // 1 and 7 inputs: the GEMV; 17, 40 and 200: tiles (AMX for bfloat16 where present).
      for (const int64_t M : {1, 7, 17, 40, 200}) {
        const at::Tensor x = randn({M, kIn}, 4 + M);
        expect_same_bits_on_more_threads([&] { return std::vector<at::Tensor>{kernel->apply(x)}; },
                                         what + ", M=" + std::to_string(M));
      }
      expect_same_bits_on_more_threads(
          [&] { return std::vector<at::Tensor>{kernel->dequantize(DType::F32)}; },
          what + ", dequantize");
    }
}

TEST(BnbThreads, EightBitQuantizationAndMatmulAreTheSameOnMoreThreads) {
  const at::Tensor w = randn({kOut, kIn}, 5) * 0.05, bias = randn({kOut}, 6);
  // More inputs than one thread quantizes (kMinValuesPerThread values each), so the activations'
  // rows and their outlier columns are split and merged too.
  const int64_t split_inputs = 2 * kMinValuesPerThread / kIn + 3;
  for (const double threshold : {6.0, 0.0}) {
    const QuantConfig cfg = config("bitsandbytes_8bit", {{"llm_int8_threshold", threshold}});
    expect_same_bits_on_more_threads([&] { return saved_tensors(*loaded_kernel(cfg, w, bias)); },
                                     "8-bit quantization");
    const auto kernel = loaded_kernel(cfg, w, bias);
    for (const int64_t M : {int64_t{1}, int64_t{7}, split_inputs}) {
      at::Tensor x = randn({M, kIn}, 7 + M);
      x[0][9] = 20.0;  // outlier columns: one in the first input, one in the last
      x[M - 1][1500] = -9.0;
      expect_same_bits_on_more_threads(
          [&] { return std::vector<at::Tensor>{kernel->apply(x)}; },
          "threshold " + std::to_string(threshold) + ", M=" + std::to_string(M));
    }
  }
}

}  // namespace
}  // namespace qplug::bnb
