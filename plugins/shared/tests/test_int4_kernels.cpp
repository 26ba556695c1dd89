// The CPU int4 kernels that gptq and awq share: every instruction set this processor runs (the
// scalar one included, and AVX-512 through SIMDe where the processor lacks it) against dense math
// on shapes with edges, and Int4Weight's batched matmul across several tiles, with and without an
// act-order g_idx.
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "int4/int4_weight.hpp"
#include "int4_kernels_under_test.hpp"
#include "packing.hpp"
#include "thread_count.hpp"

namespace qplug::int4 {
namespace {

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm())
      .item<double>();
}

// Random int4 codes in the kernels' layout, and W^T [in, out] they stand for, in double.
struct RandomWeight {
  at::Tensor codes;        // uint8 [out, in]
  at::Tensor qweight;      // int32 [in / 8, out]
  at::Tensor scales;       // float32 [G, out]
  at::Tensor zero_scales;  // float32 [G, out]
  at::Tensor zeros;        // int32 [out, G]
  at::Tensor dense_t;      // double [in, out]
  Int4View view;

  RandomWeight(int64_t in, int64_t out, int64_t group_size, uint64_t seed) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    const int64_t groups = in / group_size;
    codes = at::randint(0, 16, {out, in}, gen, at::TensorOptions().dtype(at::kByte));
    qweight = packing::pack_gptq_qweight(codes, 4);
    scales = at::rand({groups, out}, gen) * 0.1 + 0.01;
    zeros = at::randint(0, 16, {out, groups}, gen, at::TensorOptions().dtype(at::kInt));
    zero_scales = (zeros.to(at::kFloat).t() * scales).contiguous();
    const at::Tensor group_of =
        at::div(at::arange(in, at::TensorOptions().dtype(at::kLong)), group_size, "floor");
    dense_t = scales.to(at::kDouble).index_select(0, group_of) * codes.t().to(at::kDouble) -
              zero_scales.to(at::kDouble).index_select(0, group_of);
    view.qweight = qweight.data_ptr<int32_t>();
    view.scales = scales.data_ptr<float>();
    view.zero_scales = zero_scales.data_ptr<float>();
    view.in = in;
    view.out = out;
    view.group_size = group_size;
  }
};

// input_group_sums of x [M, in]: what every gemv call takes.
std::vector<float> group_sums(const at::Tensor& x, int64_t group_size) {
  std::vector<float> sums(static_cast<size_t>(x.size(0) * (x.size(1) / group_size)));
  input_group_sums(x.data_ptr<float>(), x.size(0), x.size(1), group_size, sums.data());
  return sums;
}

class EveryInt4Isa : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryInt4Isa, GemvMatchesDenseMath) {
  const Int4Kernels& k = int4_kernels_under_test(GetParam());
  // 40 outputs: two tiles of 16 and a column tail; 200: three strips of 64, a tile and a tail.
  for (int64_t N : {40, 200}) {
    const RandomWeight w(256, N, 64, 1);
    at::Generator gen = at::detail::createCPUGenerator(2);
    for (int64_t M : {1, 2, 3, 4, 5, 7}) {
      const at::Tensor x = at::randn({M, 256}, gen);
      at::Tensor y = at::zeros({M, N});
      k.gemv(w.view, x.data_ptr<float>(), group_sums(x, 64).data(), M, 0, N, y.data_ptr<float>(),
             N);
      EXPECT_LT(relative_error(y, at::matmul(x.to(at::kDouble), w.dense_t)), 1e-6)
          << GetParam() << " N=" << N << " M=" << M;
    }
  }
}

// Int4Weight splits the GEMV's outputs between threads at multiples of 16: every output must come
// out with the same bits whether a range starts or ends next to it (where a full strip of 64
// outputs would be cut into single tiles) or not.
TEST_P(EveryInt4Isa, GemvGivesTheSameBitsForAnyRangeOfOutputs) {
  const Int4Kernels& k = int4_kernels_under_test(GetParam());
  const int64_t N = 200;
  const RandomWeight w(256, N, 64, 3);
  at::Generator gen = at::detail::createCPUGenerator(4);
  for (int64_t M : {1, 2, 3, 4, 5, 8}) {
    const at::Tensor x = at::randn({M, 256}, gen);
    at::Tensor whole = at::zeros({M, N}), split = at::zeros({M, N});
    const std::vector<float> sums = group_sums(x, 64);
    k.gemv(w.view, x.data_ptr<float>(), sums.data(), M, 0, N, whole.data_ptr<float>(), N);
    for (const auto& [first, last] : {std::pair<int64_t, int64_t>{0, 48}, {48, 112}, {112, N}})
      k.gemv(w.view, x.data_ptr<float>(), sums.data(), M, first, last, split.data_ptr<float>(), N);
    EXPECT_TRUE(at::equal(split, whole)) << GetParam() << " M=" << M;
  }
}

TEST_P(EveryInt4Isa, DequantizesAnyTileOfTheTransposedWeight) {
  const Int4Kernels& k = int4_kernels_under_test(GetParam());
  const RandomWeight w(256, 40, 64, 3);
  // Inputs [8, 200) x outputs [5, 37) into a tile with rows 48 apart; its last column stays 0.
  at::Tensor tile = at::zeros({192, 48});
  k.dequantize_t(w.view, 8, 200, 5, 37, tile.data_ptr<float>(), 48);
  EXPECT_LT(relative_error(tile.narrow(1, 0, 32), w.dense_t.narrow(0, 8, 192).narrow(1, 5, 32)),
            1e-7)
      << GetParam();
  EXPECT_EQ(tile.narrow(1, 32, 16).abs().max().item<float>(), 0.0f);
}

// gemm_tile on a dequantized tile, then once more on top of it (accumulate): twice the product.
TEST_P(EveryInt4Isa, TileMultiplyMatchesDenseMath) {
  const Int4Kernels& k = int4_kernels_under_test(GetParam());
  const RandomWeight w(128, 72, 32, 5);
  at::Generator gen = at::detail::createCPUGenerator(6);
  for (int64_t M : {1, 5, 6, 7, 13})
    for (int64_t cols : {5, 16, 20, 64}) {
      const at::Tensor x = at::randn({M, 128}, gen);
      at::Tensor tile = at::zeros({40, 64});  // inputs [16, 56), outputs [3, 3 + cols)
      k.dequantize_t(w.view, 16, 56, 3, 3 + cols, tile.data_ptr<float>(), 64);
      at::Tensor y = at::full({M, cols + 1}, 7.0f);
      for (bool accumulate : {false, true})
        k.gemm_tile(x.data_ptr<float>() + 16, 128, M, tile.data_ptr<float>(), 40, cols, 64,
                    y.data_ptr<float>(), cols + 1, accumulate);
      const at::Tensor want = 2 * at::matmul(x.narrow(1, 16, 40).to(at::kDouble),
                                             w.dense_t.narrow(0, 16, 40).narrow(1, 3, cols));
      EXPECT_LT(relative_error(y.narrow(1, 0, cols), want), 1e-6)
          << GetParam() << " M=" << M << " cols=" << cols;
      EXPECT_TRUE(at::all(y.select(1, cols) == 7.0f).item<bool>());
    }
}

INSTANTIATE_TEST_SUITE_P(Isas, EveryInt4Isa, ::testing::ValuesIn(int4_isas_under_test()));

// The g_idx of `in` inputs in groups of `group_size`: in order, and shuffled as act-order leaves
// it (inputs sent to their groups out of order).
std::pair<at::Tensor, at::Tensor> natural_and_act_order_g_idx(int64_t in, int64_t group_size,
                                                              at::Generator& gen) {
  const at::Tensor natural =
      at::div(at::arange(in, at::TensorOptions().dtype(at::kInt)), group_size, "floor");
  return {natural, natural.index_select(0, at::randperm(in, gen))};
}

// Int4Weight keeps the codes and scales in strips of 64 outputs: 200 outputs make three whole
// strips and one of 8. The dense weight it gives back, and the codes in the checkpoint's layout
// (what a GPTQ layer saves), must be the ones it was built from, in the checkpoint's input order.
TEST(Int4Weight, GivesBackTheWeightItWasBuiltFrom) {
  const RandomWeight w(640, 200, 64, 11);
  at::Generator gen = at::detail::createCPUGenerator(12);
  const auto [natural, shuffled] = natural_and_act_order_g_idx(640, 64, gen);
  for (const at::Tensor& g_idx : {natural, shuffled}) {
    const std::string order = g_idx.equal(natural) ? "in order" : "act-order";
    const Int4Weight weight(w.qweight, w.zeros, w.scales, g_idx);
    EXPECT_TRUE(at::equal(weight.qweight(), w.qweight)) << order;
    // W[o, j] = scale[g_idx[j], o] * code[o, j] - zero_scale[g_idx[j], o].
    const at::Tensor group_of = g_idx.to(at::kLong);
    const at::Tensor want =
        (w.scales.to(at::kDouble).index_select(0, group_of) * w.codes.t().to(at::kDouble) -
         w.zero_scales.to(at::kDouble).index_select(0, group_of))
            .t();
    EXPECT_LT(relative_error(weight.dequantize(), want), 1e-7) << order;
  }
}

// Batches above the GEMV's 16 rows take dequantized tiles of 256 inputs x 64 outputs: 640 inputs
// and 104 outputs cross both tile edges. The act-order g_idx sends inputs to groups out of order.
TEST(Int4Weight, BatchedMatmulMatchesTheDequantizedWeight) {
  const RandomWeight w(640, 104, 64, 7);
  at::Generator gen = at::detail::createCPUGenerator(8);
  const auto [natural, shuffled] = natural_and_act_order_g_idx(640, 64, gen);
  for (const at::Tensor& g_idx : {natural, shuffled}) {
    const Int4Weight weight(w.qweight, w.zeros, w.scales, g_idx);
    const at::Tensor dense = weight.dequantize();
    for (int64_t M : {1, 16, 17, 40}) {
      const at::Tensor x = at::randn({M, 640}, gen);
      EXPECT_LT(relative_error(weight.matmul(x),
                               at::matmul(x.to(at::kDouble), dense.to(at::kDouble).t())),
                1e-6)
          << "M=" << M << (g_idx.equal(natural) ? "" : ", act-order");
    }
  }
}

// Int4Weight splits its GEMV and its tiles (whole strips of 64 outputs) and its dequantize (64
// inputs) between threads: 200 outputs and 640 inputs are split unevenly on 2 and 3 threads, and
// the results must not depend on it.
TEST(Int4Weight, SameBitsOnMoreThreads) {
  const RandomWeight w(640, 200, 64, 9);
  at::Generator gen = at::detail::createCPUGenerator(10);
  const auto [natural, shuffled] = natural_and_act_order_g_idx(640, 64, gen);
  for (const at::Tensor& g_idx : {natural, shuffled}) {
    const Int4Weight weight(w.qweight, w.zeros, w.scales, g_idx);
    const std::string order = g_idx.equal(natural) ? "" : ", act-order";
    testing::expect_same_bits_on_more_threads(
        [&] { return std::vector<at::Tensor>{weight.dequantize()}; }, "dequantize" + order);
    for (int64_t M : {1, 16, 40}) {
      const at::Tensor x = at::randn({M, 640}, gen);
      testing::expect_same_bits_on_more_threads(
          [&] { return std::vector<at::Tensor>{weight.matmul(x)}; },
          "M=" + std::to_string(M) + order);
    }
  }
}

}  // namespace
}  // namespace qplug::int4
