// Double-quantized 4-bit layers keep their scales as one byte per block, as bitsandbytes does, and
// the matmuls decode them a run of rows at a time. Such a layer must compute exactly what its codes
// give with the decoded float32 scales stored (the GEMV, the tiles, dequantize; quantized while
// loading or loaded from a checkpoint), decode with the checkpoint's own nested map, and refuse
// nested tensors of the wrong size by name.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bnb_config.hpp"
#include "bnb_test_layers.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "qplug/sdk/errors.hpp"
#include "quantize_4bit.hpp"
#include "vectors.hpp"

namespace qplug::bnb {
namespace {

// 300 rows: more than two runs of decoded scales (kScaleRunRows, 128) on one thread and on each of
// two, the last run shorter; 1024 inputs in blocks of 64, 16 scales per row, 4800 in all (18
// nested blocks and part of a 19th).
constexpr int64_t kOut = 300, kIn = 1024;

using Tensors = std::vector<std::pair<std::string, at::Tensor>>;

at::Tensor& named(Tensors& tensors, const std::string& name) {
  for (auto& [n, t] : tensors)
    if (n == name) return t;
  throw std::runtime_error("no tensor " + name);
}

QuantConfig nf4(bool nested, const std::string& compute_dtype) {
  return config("bitsandbytes_4bit", {{"bnb_4bit_quant_type", "nf4"},
                                      {"bnb_4bit_use_double_quant", nested},
                                      {"bnb_4bit_compute_dtype", compute_dtype}});
}

// The tensors of w quantized to NF4 with double quantization, and of the same codes stored with
// their decoded float32 scales instead (the quant state of an unnested layer of the same shape).
struct Checkpoints {
  Tensors nested;
  Tensors plain;
};

Checkpoints checkpoints(const at::Tensor& w) {
  Checkpoints c;
  c.nested = loaded_kernel(nf4(true, "float32"), w, at::Tensor())->tensors();
  const FourBitWeight quantized =
      quantize_4bit(w, four_bit_settings(nf4(true, "float32")), cpu_kernels());
  Tensors plain = loaded_kernel(nf4(false, "float32"), w, at::Tensor())->tensors();
  const std::string state = "weight.quant_state.bitsandbytes__nf4";
  c.plain = {{"weight", named(c.nested, "weight")},
             {"weight.absmax", float_scales(quantized)},
             {"weight.quant_map", named(c.nested, "weight.quant_map")},
             {state, named(plain, state)}};
  return c;
}

TEST(BnbNestedScales, MultiplyAsTheDecodedFloatScalesDo) {
  const at::Tensor w = randn({kOut, kIn}, 11);
  Checkpoints c = checkpoints(w);
  for (const std::string dtype : {"float32", "bfloat16"}) {
    const QuantConfig nested_cfg = nf4(true, dtype), plain_cfg = nf4(false, dtype);
    const auto want = prequantized_kernel(plain_cfg, kOut, kIn, c.plain);
    const auto loaded = prequantized_kernel(nested_cfg, kOut, kIn, c.nested);
    const auto quantized = loaded_kernel(nested_cfg, w, at::Tensor());
    // 1 and 5 inputs: the GEMV; 40: the tiles (AMX for bfloat16 where present).
    for (const int64_t M : {1, 5, 40}) {
      const at::Tensor x = randn({M, kIn}, 20 + M);
      const at::Tensor y = want->apply(x);
      EXPECT_TRUE(testing::same_bytes(loaded->apply(x), y)) << dtype << ", M=" << M;
      EXPECT_TRUE(testing::same_bytes(quantized->apply(x), y)) << dtype << ", M=" << M;
    }
    EXPECT_TRUE(testing::same_bytes(loaded->dequantize(DType::F32), want->dequantize(DType::F32)));
    EXPECT_TRUE(
        testing::same_bytes(quantized->dequantize(DType::F32), want->dequantize(DType::F32)));
  }
}

// bitsandbytes decodes the absmax codes with the nested_quant_map the checkpoint holds: a map 4x
// larger with nested scales 4x smaller (both exact in float32) stands for the same scales.
TEST(BnbNestedScales, DecodeWithTheCheckpointsOwnMap) {
  const at::Tensor w = randn({kOut, kIn}, 12);
  Checkpoints c = checkpoints(w);
  Tensors scaled = c.nested;
  named(scaled, "weight.nested_quant_map") = named(scaled, "weight.nested_quant_map") * 4;
  named(scaled, "weight.nested_absmax") = named(scaled, "weight.nested_absmax") / 4;
  const QuantConfig cfg = nf4(true, "float32");
  const at::Tensor x = randn({1, kIn}, 13);
  EXPECT_TRUE(testing::same_bytes(prequantized_kernel(cfg, kOut, kIn, scaled)->apply(x),
                                  prequantized_kernel(cfg, kOut, kIn, c.nested)->apply(x)));
  // And saves the map it was given.
  Tensors resaved = prequantized_kernel(cfg, kOut, kIn, scaled)->tensors();
  EXPECT_TRUE(testing::same_bytes(named(resaved, "weight.nested_quant_map"),
                                  named(scaled, "weight.nested_quant_map")));
}

void expect_refused(const Tensors& tensors, const std::string& tensor,
                    const std::string& fragment) {
  try {
    prequantized_kernel(nf4(true, "float32"), kOut, kIn, tensors);
    ADD_FAILURE() << "loaded a layer with a bad " << tensor;
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.tensor(), "test.layer." + tensor);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(BnbNestedScales, NestedTensorsOfTheWrongSizeAreRefusedByName) {
  Checkpoints c = checkpoints(randn({kOut, kIn}, 14));
  Tensors short_nested = c.nested;
  named(short_nested, "weight.nested_absmax") = at::ones({1}, at::kFloat);  // 4800 blocks need 19
  expect_refused(short_nested, "weight.nested_absmax", "need 19");
  Tensors short_map = c.nested;
  named(short_map, "weight.nested_quant_map") =
      named(short_map, "weight.nested_quant_map").slice(0, 0, 255);
  expect_refused(short_map, "weight.nested_quant_map", "256 values");
}

}  // namespace
}  // namespace qplug::bnb
