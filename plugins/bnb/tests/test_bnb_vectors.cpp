// The bnb formats against ../shared/spec/vectors, byte for byte, with every CPU kernel
// implementation this processor runs (scalar, AVX2, AVX-512), and the AVX-512 one through SIMDe
// where the processor lacks it.
#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

#include "bnb_config.hpp"
#include "bnb_tensors.hpp"
#include "code_tables.hpp"
#include "kernels_under_test.hpp"
#include "quantize_4bit.hpp"
#include "vectors.hpp"

namespace qplug::bnb {
namespace {

using testing::same_bytes;
using testing::tensor_bytes_as_string;
using testing::VectorFile;

const VectorFile& vectors() {
  static const VectorFile file("bnb_4bit_8bit.safetensors");
  return file;
}

at::Tensor table_tensor(QuantType type) {
  return at::from_blob(const_cast<float*>(four_bit_table(type).data()), {16},
                       at::TensorOptions().dtype(at::kFloat))
      .clone();
}

TEST(BnbCodeTables, MatchTheUpstreamTablesBitForBit) {
  const VectorFile tables("bnb_code_tables.safetensors");
  EXPECT_TRUE(same_bytes(table_tensor(QuantType::NF4), tables["nf4_code"]));
  EXPECT_TRUE(same_bytes(table_tensor(QuantType::FP4), tables["fp4_code"]));
  EXPECT_TRUE(same_bytes(dynamic_map_signed(), tables["dynamic_map_signed"]));
}

TEST(BnbCodeTables, Nf4ThresholdsSitBetweenNeighbouringLevels) {
  const auto& table = four_bit_table(QuantType::NF4);
  const auto& thresholds = nf4_thresholds();
  for (int i = 0; i < 15; ++i) {
    EXPECT_GT(thresholds[i], table[i]);
    EXPECT_LT(thresholds[i], table[i + 1]);
    EXPECT_NEAR(thresholds[i], (table[i] + table[i + 1]) / 2, 1e-6);
  }
}

struct FourBitCase {
  std::string tag;
  QuantType type;
  bool double_quant;
};

class FourBitVectors : public ::testing::TestWithParam<std::tuple<FourBitCase, std::string>> {};

TEST_P(FourBitVectors, QuantizeLikeTheCudaKernelsAndBitsandbytes) {
  const auto& [c, isa] = GetParam();
  FourBitSettings settings;
  settings.quant_type = c.type;
  settings.double_quant = c.double_quant;
  settings.blocksize = 64;
  const at::Tensor input = vectors()["input"];
  const FourBitWeight w = quantize_4bit(input, settings, kernels_under_test(isa));
  const std::string type = c.type == QuantType::NF4 ? "nf4" : "fp4";

  // Packed codes follow the CUDA comparison tree (the *_cudatree vectors).
  EXPECT_TRUE(same_bytes(w.packed, vectors()[type + "_cudatree.weight"]));
  const std::string p = c.tag + ".weight";
  if (c.double_quant) {
    EXPECT_TRUE(same_bytes(w.absmax_codes, vectors()[p + ".absmax"]));
    EXPECT_TRUE(same_bytes(w.nested_absmax, vectors()[p + ".nested_absmax"]));
    EXPECT_TRUE(same_bytes(w.nested_map, vectors()[p + ".nested_quant_map"]));
    EXPECT_FALSE(w.absmax.defined());  // only the codes are kept
  } else {
    EXPECT_TRUE(same_bytes(w.absmax, vectors()[p + ".absmax"]));
  }
  EXPECT_TRUE(same_bytes(table_tensor(c.type), vectors()[p + ".quant_map"]));
  // The quant-state JSON, byte for byte (key order, separators, nested_offset's digits).
  const std::string json = quant_state_json(settings, DType::F32, 64, 256, w.nested_offset);
  EXPECT_EQ(json, tensor_bytes_as_string(vectors()[p + ".quant_state.bitsandbytes__" + type]));

  // Dequantizing bitsandbytes' own tensors (its default-backend codes and stored scales)
  // reproduces its dequantize_4bit bit for bit.
  const at::Tensor scales =
      c.double_quant ? dequantize_absmax(vectors()[p + ".absmax"], vectors()[p + ".nested_absmax"],
                                         vectors()[p + ".nested_quant_map"], w.nested_offset)
                     : vectors()[p + ".absmax"];
  const at::Tensor dequant = dequantize_4bit(vectors()[p], scales, input.numel(), 64,
                                             four_bit_table(c.type).data(), kernels_under_test(isa))
                                 .view({64, 256});
  EXPECT_TRUE(same_bytes(dequant, vectors()[c.tag + ".dequant"]));
  // Our (CUDA-rule) codes decode to the same values wherever the two rule sets agree: everywhere
  // but the all-zero block, which the tree codes as -1.0 x a reconstructed scale.
  const at::Tensor ours = dequantize_4bit(w.packed, float_scales(w), input.numel(), 64,
                                          four_bit_table(c.type).data(), kernels_under_test(isa))
                              .view({64, 256});
  const at::Tensor zero_row = at::arange(64) == 7;
  EXPECT_TRUE(at::equal(ours.index({~zero_row}), vectors()[c.tag + ".dequant"].index({~zero_row})));
}

std::string case_name(const ::testing::TestParamInfo<FourBitVectors::ParamType>& info) {
  return std::get<0>(info.param).tag + "_" + std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(
    AllCasesAllIsas, FourBitVectors,
    ::testing::Combine(::testing::Values(FourBitCase{"nf4_nodq", QuantType::NF4, false},
                                         FourBitCase{"nf4_dq", QuantType::NF4, true},
                                         FourBitCase{"fp4_nodq", QuantType::FP4, false},
                                         FourBitCase{"fp4_dq", QuantType::FP4, true}),
                       ::testing::ValuesIn(isas_under_test())),
    case_name);

class Int8Vectors : public ::testing::TestWithParam<std::string> {};

TEST_P(Int8Vectors, QuantizeRowwiseLikeLlmInt8) {
  const CpuKernels& k = kernels_under_test(GetParam());
  const at::Tensor w = vectors()["int8.input_fp16"].to(at::kFloat).contiguous();
  const int64_t rows = w.size(0), K = w.size(1);
  at::Tensor codes = at::empty({rows, K}, at::TensorOptions().dtype(at::kChar));
  at::Tensor scb = at::empty({rows}, at::TensorOptions().dtype(at::kFloat));
  k.quantize_int8_rows(w.data_ptr<float>(), K, 0, rows, codes.data_ptr<int8_t>(),
                       scb.data_ptr<float>());
  EXPECT_TRUE(same_bytes(codes, vectors()["int8.weight"]));
  EXPECT_TRUE(same_bytes(scb, vectors()["int8.SCB"]));
  const at::Tensor dequant = codes.to(at::kFloat) * scb.unsqueeze(1) * 7.874015718698502e-3f;
  EXPECT_TRUE(same_bytes(dequant, vectors()["int8.dequant"]));
  EXPECT_EQ(vectors()["int8.weight_format"].item<int64_t>(), 0);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Int8Vectors, ::testing::ValuesIn(isas_under_test()));

// The nested code of each scale is bucketize(right=False) over the midpoints of the signed dynamic
// map: std::lower_bound, spelled out here as the reference for the fast search. 1003 scales give
// three full nested blocks and a partial one that is not a multiple of the search's 8 lanes.
TEST(BnbDoubleQuant, NestedCodesAreTheLowerBoundOfEachScaleAmongTheMidpoints) {
  at::Generator gen = at::detail::createCPUGenerator(7);
  FourBitWeight w;
  w.absmax = at::exp(at::randn({1003}, gen) * 2.0);
  const at::Tensor scales = w.absmax.clone();
  double_quantize(w);
  const at::Tensor map = dynamic_map_signed();
  const float* code = map.data_ptr<float>();
  std::vector<float> midpoints(255);
  for (int i = 0; i < 255; ++i)
    midpoints[i] = (code[i] + code[i + 1]) / 2.0f;
  const float* a = scales.data_ptr<float>();
  const uint8_t* got = w.absmax_codes.data_ptr<uint8_t>();
  int64_t mismatches = 0;
  for (int64_t i = 0; i < 1003; ++i) {
    const float m = w.nested_absmax[i / 256].item<float>();
    const float y = std::min(1.0f, std::max(-1.0f, (a[i] - w.nested_offset) * (1.0f / m)));
    const auto want = std::lower_bound(midpoints.begin(), midpoints.end(), y) - midpoints.begin();
    mismatches += got[i] != want;
  }
  EXPECT_EQ(mismatches, 0);
  // Every scale equal to the mean: all get the code of 0, and decode back exactly.
  FourBitWeight flat;
  flat.absmax = at::full({300}, 0.25f);
  double_quantize(flat);
  const auto zero_code =
      std::lower_bound(midpoints.begin(), midpoints.end(), 0.0f) - midpoints.begin();
  EXPECT_EQ(flat.absmax_codes.min().item<int64_t>(), zero_code);
  EXPECT_EQ(flat.absmax_codes.max().item<int64_t>(), zero_code);
  EXPECT_TRUE(at::equal(float_scales(flat), at::full({300}, 0.25f)));
}

TEST(BnbKernels, AllZeroBlocksFollowTheCudaRule) {
  // 1/0 = inf, 0 * inf = NaN: NF4 emits code 0 for the whole block, FP4 code 0; both decode to 0.
  at::Tensor w = at::zeros({2, 64});
  w[1].fill_(0.5);
  for (const auto& isa : isas_under_test()) {
    FourBitSettings s;
    s.quant_type = QuantType::NF4;
    const FourBitWeight q = quantize_4bit(w, s, kernels_under_test(isa));
    EXPECT_EQ(q.absmax[0].item<float>(), 0.0f) << isa;
    EXPECT_EQ(q.packed.narrow(0, 0, 32).max().item<int64_t>(), 0) << isa;
    EXPECT_EQ(q.packed.narrow(0, 32, 32).min().item<int64_t>(), 0xFF) << isa;  // 1.0 -> code 15
  }
}

TEST(BnbKernels, OddSizesPadTheLastNibbleWithTheCodeOfZero) {
  const at::Tensor w = at::linspace(-1, 1, 99);  // 99 values: two blocks, the last partial
  for (const auto& isa : isas_under_test()) {
    FourBitSettings s;
    s.quant_type = QuantType::NF4;
    const FourBitWeight nf4 = quantize_4bit(w, s, kernels_under_test(isa));
    ASSERT_EQ(nf4.packed.size(0), 50);
    EXPECT_EQ(nf4.packed[49][0].item<int64_t>() & 15, 7) << isa;  // NF4 code of 0.0
    s.quant_type = QuantType::FP4;
    const FourBitWeight fp4 = quantize_4bit(w, s, kernels_under_test(isa));
    EXPECT_EQ(fp4.packed[49][0].item<int64_t>() & 15, 0) << isa;  // FP4 code of +0.0
    EXPECT_TRUE(same_bytes(
        nf4.packed,
        quantize_4bit(w, FourBitSettings{QuantType::NF4, false, 64, DType::F32}, scalar_kernels())
            .packed));
  }
}

}  // namespace
}  // namespace qplug::bnb
