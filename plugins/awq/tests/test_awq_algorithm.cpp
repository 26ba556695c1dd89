// AWQ's arithmetic (FORMATS.md D.1-D.3) on small hand-checked inputs: the group-wise quantizer,
// the per-channel means, the candidate scales and the clip search.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include <qplug/sdk/errors.hpp>

#include "awq_algorithm.hpp"
#include "thread_count.hpp"

namespace qplug::awq {
namespace {

TEST(AwqPseudoQuantize, ZeroPointGroupsFollowD1) {
  // One group of 4: min -1, max 2 -> scale 3/15 = 0.2, zero = clamp(-round(-1 / 0.2)) = 5.
  const at::Tensor w = at::tensor({-1.0f, 0.33f, 0.5f, 2.0f}).view({1, 4});
  const at::Tensor q = pseudo_quantize(w, 4, 4, true);
  // round(0.33 / 0.2) = 2 -> (2 + 5 - 5) * 0.2 = 0.4; 0.5 / 0.2 = 2.5 rounds to even: 0.4.
  const at::Tensor want = at::tensor({-1.0f, 0.4f, 0.4f, 2.0f}).view({1, 4});
  EXPECT_TRUE(at::allclose(q, want, 0, 1e-6)) << q;
  const AwqCodes c = quantize_codes(w, 4, 4);
  EXPECT_EQ(c.zeros.item<uint8_t>(), 5);
  EXPECT_TRUE(at::equal(c.codes, at::tensor({0, 7, 7, 15}, at::kByte).view({1, 4})));
  EXPECT_FLOAT_EQ(c.scales.item<float>(), 0.2f);
}

TEST(AwqPseudoQuantize, ZeroIsNotForcedIntoTheRange) {
  // All-positive group: GPTQ would widen the range to include 0, AWQ does not.
  const at::Tensor w = at::tensor({1.0f, 1.5f, 2.0f, 2.5f}).view({1, 4});
  const AwqCodes c = quantize_codes(w, 4, 4);
  EXPECT_FLOAT_EQ(c.scales.item<float>(), 0.1f);
  EXPECT_EQ(c.zeros.item<uint8_t>(), 0);  // -round(1 / 0.1) = -10, clamped to 0
  // With the zero clamped at 0, weights above 15 * scale saturate at code 15.
  EXPECT_EQ(c.codes.max().item<uint8_t>(), 15);
}

TEST(AwqPseudoQuantize, CodesDequantizeToThePseudoQuantizedWeight) {
  at::manual_seed(1);
  const at::Tensor w = at::randn({16, 256}) * 0.05;
  for (int64_t gs : {32, 128, -1}) {
    const AwqCodes c = quantize_codes(w, gs, 4);
    const int64_t g = gs > 0 ? gs : 256;
    const at::Tensor s = c.scales.repeat_interleave(g, 1);
    const at::Tensor z = c.zeros.to(at::kFloat).repeat_interleave(g, 1);
    const at::Tensor dq = (c.codes.to(at::kFloat) - z) * s;
    EXPECT_TRUE(at::allclose(dq, pseudo_quantize(w, gs, 4, true), 0, 1e-6)) << gs;
  }
}

TEST(AwqPseudoQuantize, FusedScaledFormIsBitIdenticalToTheTensorExpression) {
  at::manual_seed(2);
  const at::Tensor w = at::randn({48, 256}) * 0.05;
  const at::Tensor s = at::rand({256}) * 4 + 0.1;
  at::Tensor out;  // allocated by the first call, reused by the next ones
  for (bool zero_point : {true, false})
    for (int64_t gs : {64, 128, -1}) {
      scaled_pseudo_quantize_into(w, s, gs, 4, zero_point, out);
      const at::Tensor row = s.view({1, -1});
      EXPECT_TRUE(at::equal(out, pseudo_quantize(w * row, gs, 4, zero_point) / row))
          << gs << " " << zero_point;
    }
  EXPECT_THROW(scaled_pseudo_quantize_into(w, at::ones({255}), 64, 4, true, out), KernelError);
}

// The fused form splits its rows between threads (16 per task): 100 rows are split unevenly on 2
// and 3 threads, and each thread's own buffer of scaled values must not leak into another's rows.
TEST(AwqPseudoQuantize, FusedScaledFormIsTheSameOnMoreThreads) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({100, 256}) * 0.05;
  const at::Tensor s = at::rand({256}) * 4 + 0.1;
  for (bool zero_point : {true, false})
    testing::expect_same_bits_on_more_threads(
        [&] {
          at::Tensor out;
          scaled_pseudo_quantize_into(w, s, 64, 4, zero_point, out);
          return std::vector<at::Tensor>{out};
        },
        zero_point ? "zero point" : "symmetric");
}

TEST(AwqPseudoQuantize, SymmetricWithoutZeroPoint) {
  const at::Tensor w = at::tensor({-0.7f, 0.1f, 0.35f, 0.7f}).view({1, 4});
  // scale = 0.7 / 7 = 0.1; codes in [-8, 7].
  const at::Tensor q = pseudo_quantize(w, 4, 4, false);
  EXPECT_TRUE(at::allclose(q, at::tensor({-0.7f, 0.1f, 0.4f, 0.7f}).view({1, 4}), 0, 1e-6)) << q;
}

TEST(AwqPseudoQuantize, BadShapesAndNanAreErrors) {
  EXPECT_THROW(pseudo_quantize(at::zeros({2, 100}), 64, 4, true), KernelError);
  at::Tensor w = at::zeros({2, 64});
  w[0][3] = NAN;
  EXPECT_THROW(quantize_codes(w, 64, 4), KernelError);
}

TEST(AwqMeans, WeightMeanNormalisesEachGroupByItsMax) {
  // Two linears stacked: rows [1, 2 | 4, 0] and [2, 2 | 1, 1] with groups of 2.
  const at::Tensor a = at::tensor({1.0f, -2.0f, 4.0f, 0.0f}).view({1, 4});
  const at::Tensor b = at::tensor({2.0f, 2.0f, -1.0f, 1.0f}).view({1, 4});
  const at::Tensor m = weight_mean({a, b}, 2);
  const double e = 1e-6;
  const at::Tensor want =
      at::tensor({(1 / (2 + e) + 2 / (2 + e)) / 2, (2 / (2 + e) + 2 / (2 + e)) / 2,
                  (4 / (4 + e) + 1 / (1 + e)) / 2, (0 + 1 / (1 + e)) / 2},
                 at::kFloat);
  EXPECT_TRUE(at::allclose(m, want, 0, 1e-6)) << m;
}

TEST(AwqMeans, ActivationMeanIsPerChannelOverEveryToken) {
  const at::Tensor x = at::tensor({1.0f, -2.0f, -3.0f, 4.0f, 5.0f, 0.0f}).view({1, 3, 2});
  EXPECT_TRUE(at::allclose(activation_mean(x), at::tensor({3.0f, 2.0f}), 0, 1e-6));
}

TEST(AwqScales, CandidatesAreNormalisedAndRatioZeroIsFlatWithoutDuo) {
  const at::Tensor x_mean = at::tensor({1.0f, 4.0f, 9.0f});
  const at::Tensor w_mean = at::tensor({0.5f, 0.5f, 0.25f});
  // llm-awq's original: ratio 0 gives all ones.
  EXPECT_TRUE(at::allclose(candidate_scales(x_mean, w_mean, 0.0, false), at::ones({3})));
  // ratio 0.5 without duo: sqrt(x) = 1, 2, 3, normalised by sqrt(3 * 1).
  EXPECT_TRUE(at::allclose(candidate_scales(x_mean, w_mean, 0.5, false),
                           at::tensor({1.0f, 2.0f, 3.0f}) / std::sqrt(3.0f), 0, 1e-6));
  // Duo scaling divides by w_mean^(1 - ratio) + 1e-4 before normalising.
  const at::Tensor raw = x_mean.pow(0.25) / (w_mean.pow(0.75) + 1e-4);
  const at::Tensor want = raw / (raw.max() * raw.min()).sqrt();
  EXPECT_TRUE(at::allclose(candidate_scales(x_mean, w_mean, 0.25, true), want, 0, 1e-6));
  // max * min of the normalised scales is 1.
  const at::Tensor s = candidate_scales(x_mean, w_mean, 0.75, true);
  EXPECT_NEAR((s.max() * s.min()).item<float>(), 1.0f, 1e-5);
}

TEST(AwqClip, ClippingAnOutlierRowReducesTheOutputError) {
  at::manual_seed(3);
  // One group whose range an outlier stretches: clipping it trades that one weight's error
  // for finer steps everywhere else.
  at::Tensor w = at::randn({64, 128}) * 0.02;
  w.index_put_({at::indexing::Slice(), 5}, 0.5);
  at::Tensor x = at::randn({1024, 128});
  x.index_put_({at::indexing::Slice(), 5}, 0.01);  // the outlier's input barely fires
  const at::Tensor bound = search_clip(w, x, 128, 4);
  ASSERT_EQ(bound.sizes().vec(), (std::vector<int64_t>{64, 1}));
  const at::Tensor org_max = w.abs().amax(1, true);
  EXPECT_TRUE((bound <= org_max + 1e-7).all().item<bool>());
  EXPECT_TRUE((bound < org_max * 0.9).all().item<bool>()) << bound.squeeze();
  const at::Tensor clipped = at::clamp(w, -bound, bound);
  auto error = [&](const at::Tensor& weight) {
    return (at::matmul(x, pseudo_quantize(weight, 128, 4, true).t()) - at::matmul(x, w.t()))
        .pow(2)
        .mean()
        .item<double>();
  };
  EXPECT_LT(error(clipped), error(w));
}

TEST(AwqClip, ShrinkStepsFollowTheGrid) {
  at::manual_seed(4);
  const at::Tensor w = at::randn({256, 64});
  const at::Tensor x = at::randn({100, 64});
  const at::Tensor bound = search_clip(w, x, 32, 4);
  ASSERT_EQ(bound.sizes().vec(), (std::vector<int64_t>{256, 2}));
  // Each bound is org_max * (1 - i / 20) for some i in 0..9.
  const at::Tensor org_max = w.abs().view({256, 2, 32}).amax(-1);
  const at::Tensor steps = (1 - bound / org_max) * 20;
  EXPECT_TRUE(at::allclose(steps, steps.round(), 0, 1e-3));
  EXPECT_LE(steps.max().item<float>(), 9.001f);
}

TEST(AwqClip, QueryAndKeyLayersAreSkipped) {
  EXPECT_TRUE(clip_skips("model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(clip_skips("model.layers.0.self_attn.k_proj"));
  EXPECT_TRUE(clip_skips("transformer.h.0.attn.Wqkv"));
  EXPECT_FALSE(clip_skips("model.layers.0.self_attn.v_proj"));
  EXPECT_FALSE(clip_skips("model.layers.0.mlp.down_proj"));
}

}  // namespace
}  // namespace qplug::awq
