// The GPTQ and AWQ packers against the upstream vectors (gptq_awq_pack.safetensors, written by
// AutoGPTQ QuantLinear.pack and AutoAWQ WQLinear_GEMM/GEMV.from_linear), against an independent
// bit-by-bit packer on random shapes, and on the inputs they must refuse.
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "packing.hpp"
#include "qplug/sdk/errors.hpp"
#include "thread_count.hpp"
#include "vectors.hpp"

namespace qplug::packing {
namespace {

using testing::same_bytes;
using testing::VectorFile;

const VectorFile& vectors() {
  static const VectorFile file("gptq_awq_pack.safetensors");
  return file;
}

at::Tensor vec(const std::string& name) {
  return vectors()[name];
}

// Random codes in [0, 2^bits - 1] as uint8.
at::Tensor random_codes(int64_t rows, int64_t cols, int bits, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(0, int64_t{1} << bits, {rows, cols}, gen, at::kLong).to(at::kByte);
}

// An independent reference for every GPTQ layout: each column of qweight (each row of qzeros) is
// one little-endian bit stream of the values in order, value k at bits k*bits.. (for 3 bits this is
// the 96-bit stream of FORMATS C.3; for 2/4/8 it reduces to "lowest bits hold the first value").
// values: [streams, count] -> int32 [count*bits/32, streams], built one bit at a time.
at::Tensor reference_stream_pack(const at::Tensor& values, int bits) {
  const int64_t streams = values.size(0), count = values.size(1);
  std::vector<uint32_t> words(count * bits / 32 * streams, 0);
  const at::Tensor v = values.to(at::kLong).contiguous();
  const int64_t* p = v.data_ptr<int64_t>();
  for (int64_t s = 0; s < streams; ++s) {
    for (int64_t k = 0; k < count; ++k) {
      for (int b = 0; b < bits; ++b) {
        if (!((p[s * count + k] >> b) & 1)) continue;
        const int64_t bit = k * bits + b;
        words[(bit / 32) * streams + s] |= 1u << (bit % 32);
      }
    }
  }
  at::Tensor out = at::empty({count * bits / 32, streams}, at::kInt);
  std::memcpy(out.data_ptr(), words.data(), words.size() * 4);
  return out;
}

// ---- GPTQ vectors -------------------------------------------------------------------------------

struct GptqCase {
  std::string tag;
  int bits;
};
void PrintTo(const GptqCase& c, std::ostream* os) {
  *os << c.tag;
}

std::vector<GptqCase> gptq_cases() {
  std::vector<GptqCase> cases;
  for (int bits : {2, 3, 4, 8}) {
    for (const char* gs : {"g128", "g32"}) {
      for (const char* act : {"noact", "act"}) {
        const std::string tag = "gptq_b" + std::to_string(bits) + "_" + gs + "_" + act;
        cases.push_back({tag, bits});
        if (bits == 4) cases.push_back({tag + "_sym", bits});
      }
    }
  }
  return cases;
}

class GptqVectors : public ::testing::TestWithParam<GptqCase> {
 protected:
  at::Tensor t(const std::string& suffix) const { return vec(GetParam().tag + "." + suffix); }
  int bits() const { return GetParam().bits; }
};

TEST_P(GptqVectors, QweightIsByteIdenticalToAutoGptq) {
  EXPECT_TRUE(same_bytes(pack_gptq_qweight(t("intweight"), bits()), t("qweight")));
}

TEST_P(GptqVectors, QzerosV1AndV2AreByteIdentical) {
  EXPECT_TRUE(same_bytes(pack_gptq_qzeros(t("zeros"), bits(), /*v1=*/true), t("qzeros")));
  EXPECT_TRUE(same_bytes(pack_gptq_qzeros(t("zeros"), bits(), /*v1=*/false), t("qzeros_v2")));
}

TEST_P(GptqVectors, UnpackRoundTrips) {
  const at::Tensor intweight = t("intweight"), zeros = t("zeros").to(at::kInt);
  const int64_t out = intweight.size(0), in = intweight.size(1);
  EXPECT_TRUE(same_bytes(unpack_gptq_qweight(t("qweight"), bits(), in), intweight));
  EXPECT_TRUE(same_bytes(unpack_gptq_qzeros(t("qzeros"), bits(), out, true), zeros));
  EXPECT_TRUE(same_bytes(unpack_gptq_qzeros(t("qzeros_v2"), bits(), out, false), zeros));
}

TEST_P(GptqVectors, DequantizeIsExact) {
  const at::Tensor dequant = t("dequant");
  EXPECT_TRUE(same_bytes(
      dequantize_gptq(t("qweight"), t("qzeros"), t("scales"), t("g_idx"), bits(), true), dequant));
  EXPECT_TRUE(same_bytes(
      dequantize_gptq(t("qweight"), t("qzeros_v2"), t("scales"), t("g_idx"), bits(), false),
      dequant));
  // Reading v2 zeros as v1 shifts every zero by one, which must show.
  EXPECT_FALSE(same_bytes(
      dequantize_gptq(t("qweight"), t("qzeros_v2"), t("scales"), t("g_idx"), bits(), true),
      dequant));
}

TEST_P(GptqVectors, MatchesTheBitStreamReference) {
  // Ties the vectors to the layout FORMATS C.3 describes, independently of our packer.
  EXPECT_TRUE(same_bytes(reference_stream_pack(t("intweight"), bits()), t("qweight")));
  EXPECT_TRUE(
      same_bytes(reference_stream_pack(t("zeros").t(), bits()).t().contiguous(), t("qzeros_v2")));
}

INSTANTIATE_TEST_SUITE_P(AllCases, GptqVectors, ::testing::ValuesIn(gptq_cases()),
                         [](const ::testing::TestParamInfo<GptqCase>& info) {
                           return info.param.tag;
                         });

TEST(GptqVectorsCoverage, EveryStoredGptqCaseIsTested) {
  // 4 bit widths x 2 group sizes x act/noact, plus 4 symmetric 4-bit cases.
  EXPECT_EQ(gptq_cases().size(), 20u);
  for (const GptqCase& c : gptq_cases())
    EXPECT_TRUE(vectors().contains(c.tag + ".qweight")) << c.tag;
}

// ---- AWQ vectors --------------------------------------------------------------------------------

struct AwqCase {
  std::string tag;
  int64_t group_size;
};
void PrintTo(const AwqCase& c, std::ostream* os) {
  *os << c.tag;
}

class AwqVectors : public ::testing::TestWithParam<AwqCase> {
 protected:
  at::Tensor t(const std::string& suffix) const { return vec(GetParam().tag + "." + suffix); }
  int64_t gs() const { return GetParam().group_size; }
  // The true scales [out, G]; the GEMM layout stores their transpose.
  at::Tensor scales() const { return t("gemm.scales").t().contiguous(); }
};

TEST_P(AwqVectors, GemmIsByteIdenticalToAutoAwq) {
  EXPECT_TRUE(same_bytes(pack_awq_gemm(t("intweight")), t("gemm.qweight")));
  EXPECT_TRUE(same_bytes(pack_awq_gemm_zeros(t("zeros")), t("gemm.qzeros")));
  EXPECT_TRUE(same_bytes(unpack_awq_gemm(t("gemm.qweight")), t("intweight")));
  EXPECT_TRUE(same_bytes(unpack_awq_gemm_zeros(t("gemm.qzeros")), t("zeros")));
}

TEST_P(AwqVectors, GemmDequantizeIsExact) {
  EXPECT_TRUE(
      same_bytes(dequantize_awq_gemm(t("gemm.qweight"), t("gemm.qzeros"), t("gemm.scales"), gs()),
                 t("dequant")));
}

TEST_P(AwqVectors, GemvIsByteIdenticalToAutoAwq) {
  const int64_t groups = t("zeros").size(1);
  EXPECT_TRUE(same_bytes(pack_awq_gemv(t("intweight")), t("gemv.qweight")));
  EXPECT_TRUE(same_bytes(pack_awq_gemv_zeros(t("zeros"), gs()), t("gemv.qzeros")));
  EXPECT_TRUE(same_bytes(awq_gemv_scales(scales(), gs()), t("gemv.scales")));
  EXPECT_TRUE(same_bytes(unpack_awq_gemv(t("gemv.qweight")), t("intweight")));
  EXPECT_TRUE(same_bytes(unpack_awq_gemv_zeros(t("gemv.qzeros"), groups), t("zeros")));
  EXPECT_TRUE(same_bytes(unpack_awq_gemv_scales(t("gemv.scales"), groups), scales()));
}

TEST_P(AwqVectors, RepackToGptqV1IsByteIdentical) {
  const GptqPacked gptq = awq_to_gptq_v1(t("gemm.qweight"), t("gemm.qzeros"));
  EXPECT_TRUE(same_bytes(gptq.qweight, t("awq_to_gptq_v1.qweight")));
  EXPECT_TRUE(same_bytes(gptq.qzeros, t("awq_to_gptq_v1.qzeros")));
  // ... and the same as packing the integers as GPTQ directly.
  EXPECT_TRUE(same_bytes(gptq.qweight, pack_gptq_qweight(t("intweight"), 4)));
  EXPECT_TRUE(same_bytes(gptq.qzeros, pack_gptq_qzeros(t("zeros"), 4, true)));
}

INSTANTIATE_TEST_SUITE_P(AllCases, AwqVectors,
                         ::testing::Values(AwqCase{"awq_b4_g128", 128}, AwqCase{"awq_b4_g32", 32}),
                         [](const ::testing::TestParamInfo<AwqCase>& info) {
                           return info.param.tag;
                         });

TEST(AwqGemv, ZerosWidthFollowsAutoAwq) {
  EXPECT_EQ(awq_gemv_zeros_width(2, 128), 1);
  EXPECT_EQ(awq_gemv_zeros_width(9, 128), 2);
  EXPECT_EQ(awq_gemv_zeros_width(8, 64), 2);
  EXPECT_EQ(awq_gemv_zeros_width(17, 64), 4);
  EXPECT_EQ(awq_gemv_zeros_width(8, 32), 4);
  EXPECT_EQ(awq_gemv_zeros_width(344, 32), 44);
  EXPECT_THROW(awq_gemv_zeros_width(8, 16), KernelError);
  EXPECT_THROW(awq_gemv_zeros_width(8, -1), KernelError);
}

// ---- random shapes against the reference
// ---------------------------------------------------------

TEST(GptqRandom, AllBitWidthsMatchTheReferenceAndRoundTrip) {
  for (int bits : {2, 3, 4, 8}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    const int64_t out = 96, in = 320;
    const at::Tensor q = random_codes(out, in, bits, 11 + bits);
    const at::Tensor packed = pack_gptq_qweight(q, bits);
    EXPECT_TRUE(same_bytes(packed, reference_stream_pack(q, bits)));
    EXPECT_TRUE(same_bytes(unpack_gptq_qweight(packed, bits, in), q));

    const at::Tensor z = random_codes(out, 5, bits, 99 + bits);
    const at::Tensor qz = pack_gptq_qzeros(z, bits, false);
    EXPECT_TRUE(same_bytes(qz, reference_stream_pack(z.t(), bits).t().contiguous()));
    EXPECT_TRUE(same_bytes(unpack_gptq_qzeros(qz, bits, out, false), z.to(at::kInt)));
  }
}

TEST(AwqRandom, NonSquareRoundTrips) {
  const at::Tensor q = random_codes(48, 200, 4, 5);
  EXPECT_TRUE(same_bytes(unpack_awq_gemm(pack_awq_gemm(q)), q));
  EXPECT_TRUE(same_bytes(unpack_awq_gemv(pack_awq_gemv(q)), q));
  // Column 8c+j of a GEMM word sits at nibble AWQ_REVERSE_ORDER[j] = [0,4,1,5,2,6,3,7][j].
  at::Tensor one_row = at::zeros({8, 1}, at::kByte);
  one_row[1][0] = 0xA;  // output column 1 -> nibble 4
  one_row[6][0] = 0x3;  // output column 6 -> nibble 3
  EXPECT_EQ(static_cast<uint32_t>(pack_awq_gemm(one_row).item<int32_t>()), 0x000A3000u);
}

// ---- the v1 zero of 0
// ------------------------------------------------------------------------------

TEST(GptqV1Zeros, AZeroOfZeroLeavesItsNeighboursAlone) {
  for (int bits : {2, 3, 4, 8}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    const int maxq = (1 << bits) - 1;
    at::Tensor z = at::full({32, 1}, 2, at::kByte);  // 32 outputs, 1 group
    z[10][0] = 0;                                    // for 3 bits, field 10 straddles words 0 and 1
    z[11][0] = maxq;
    const at::Tensor fields = unpack_gptq_qzeros(pack_gptq_qzeros(z, bits, true), bits, 32, false);
    at::Tensor expected = (z.to(at::kInt) - 1);
    expected[10][0] = maxq;  // all ones in its own field, exactly what AutoGPTQ writes there
    EXPECT_TRUE(same_bytes(fields, expected));
    // Readers add 1 without wrapping, so the field reads back as 2^bits (as in the kernels).
    const at::Tensor read = unpack_gptq_qzeros(pack_gptq_qzeros(z, bits, true), bits, 32, true);
    EXPECT_EQ(read[10][0].item<int32_t>(), maxq + 1);
    EXPECT_EQ(read[9][0].item<int32_t>(), 2);
    EXPECT_EQ(read[11][0].item<int32_t>(), maxq);
  }
  // The 4-bit word, spelled out: fields 1 (zero 2) with field 2 holding 0xF.
  at::Tensor z4 = at::full({8, 1}, 2, at::kByte);
  z4[2][0] = 0;
  EXPECT_EQ(static_cast<uint32_t>(pack_gptq_qzeros(z4, 4, true).item<int32_t>()), 0x11111F11u);
}

TEST(GptqV1Zeros, AwqZeroOfZeroRepacksCleanly) {
  const at::Tensor q = random_codes(64, 128, 4, 3);
  at::Tensor z = at::full({64, 1}, 7, at::kByte);
  z[5][0] = 0;
  const GptqPacked gptq = awq_to_gptq_v1(pack_awq_gemm(q), pack_awq_gemm_zeros(z));
  EXPECT_TRUE(same_bytes(gptq.qzeros, pack_gptq_qzeros(z, 4, true)));
  const at::Tensor fields = unpack_gptq_qzeros(gptq.qzeros, 4, 64, false);
  EXPECT_EQ(fields[4][0].item<int32_t>(), 6);
  EXPECT_EQ(fields[5][0].item<int32_t>(), 15);
  EXPECT_EQ(fields[6][0].item<int32_t>(), 6);
}

// ---- shapes that cannot be packed
// ------------------------------------------------------------------

TEST(Unpackable, GptqReasons) {
  EXPECT_EQ(gptq_unpackable_reason(4096, 11008, 4), std::nullopt);
  EXPECT_EQ(gptq_unpackable_reason(4096, 11008, 3), std::nullopt);
  EXPECT_EQ(gptq_unpackable_reason(172, 64, 8), std::nullopt);
  EXPECT_EQ(gptq_unpackable_reason(172, 64, 4),
            std::optional<std::string>("in_features 172 is not a multiple of 8 (32 / 4 bits)"));
  EXPECT_EQ(gptq_unpackable_reason(256, 100, 2),
            std::optional<std::string>("out_features 100 is not a multiple of 16 (32 / 2 bits)"));
  const auto three = gptq_unpackable_reason(256, 48, 3);
  ASSERT_TRUE(three.has_value());
  EXPECT_NE(three->find("out_features 48"), std::string::npos) << *three;
  EXPECT_NE(three->find("3-bit packing needs in_features and out_features to be multiples of 32"),
            std::string::npos)
      << *three;
  const auto bad_bits = gptq_unpackable_reason(256, 64, 5);
  ASSERT_TRUE(bad_bits.has_value());
  EXPECT_NE(bad_bits->find("bits 5"), std::string::npos) << *bad_bits;
  EXPECT_TRUE(gptq_unpackable_reason(0, 64, 4).has_value());
}

TEST(Unpackable, AwqReasons) {
  EXPECT_EQ(awq_unpackable_reason(4096, 11008, 128), std::nullopt);
  EXPECT_EQ(awq_unpackable_reason(200, 64, -1), std::nullopt);
  EXPECT_EQ(awq_unpackable_reason(200, 64, 128),
            std::optional<std::string>("in_features 200 is not a multiple of group_size 128"));
  EXPECT_EQ(awq_unpackable_reason(256, 100, 128),
            std::optional<std::string>("out_features 100 is not a multiple of 8 (32 / 4 bits)"));
  EXPECT_TRUE(awq_unpackable_reason(256, 64, 0).has_value());
  EXPECT_TRUE(awq_unpackable_reason(256, 64, -2).has_value());
}

// ---- malformed inputs
// ---------------------------------------------------------------------------------

// Expects a KernelError whose message contains `needle`.
template <typename F>
void expect_kernel_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no KernelError (expected one mentioning '" << needle << "')";
  } catch (const KernelError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Malformed, GptqPackersRefuseBadInputs) {
  const at::Tensor q = random_codes(64, 256, 4, 1);
  expect_kernel_error([&] { pack_gptq_qweight(q.to(at::kInt), 4); }, "must be Byte");
  expect_kernel_error([&] { pack_gptq_qweight(q.flatten(), 4); }, "2 dimensions");
  expect_kernel_error([&] { pack_gptq_qweight(q, 5); }, "bits 5");
  expect_kernel_error([&] { pack_gptq_qweight(q.narrow(1, 0, 172), 4); }, "in_features 172");
  expect_kernel_error([&] { pack_gptq_qweight(q.narrow(0, 0, 60), 4); }, "out_features 60");
  expect_kernel_error([&] { pack_gptq_qweight(q, 3); }, "codes above 7");
  expect_kernel_error([&] { pack_gptq_qweight(q, 2); }, "codes above 3");
  const at::Tensor z = at::full({64, 2}, 16, at::kByte);
  expect_kernel_error([&] { pack_gptq_qzeros(z, 4, true); }, "codes above 15");
  expect_kernel_error([&] { pack_gptq_qzeros(z, 4, false); }, "codes above 15");
  expect_kernel_error(
      [&] {
        pack_gptq_qzeros(at::ones({60, 2}, at::kByte), 4, true);
      },
      "out_features 60");
}

TEST(Malformed, GptqUnpackersRefuseBadInputs) {
  const at::Tensor qweight = vec("gptq_b4_g128_noact.qweight");
  const at::Tensor qzeros = vec("gptq_b4_g128_noact.qzeros");
  const at::Tensor scales = vec("gptq_b4_g128_noact.scales");
  const at::Tensor g_idx = vec("gptq_b4_g128_noact.g_idx");
  expect_kernel_error([&] { unpack_gptq_qweight(qweight, 4, 248); }, "dimension 0 should be 31");
  expect_kernel_error([&] { unpack_gptq_qweight(qweight.to(at::kLong), 4, 256); }, "Int");
  expect_kernel_error([&] { unpack_gptq_qzeros(qzeros, 4, 72, true); }, "should be 9");
  expect_kernel_error([&] { dequantize_gptq(qweight, qzeros, scales, g_idx.to(at::kFloat), 4, 1); },
                      "g_idx");
  expect_kernel_error([&] { dequantize_gptq(qweight, qzeros, scales.t(), g_idx, 4, true); },
                      "scales");
  expect_kernel_error([&] { dequantize_gptq(qweight, qzeros, scales.to(at::kInt), g_idx, 4, 1); },
                      "floating");
  expect_kernel_error([&] { dequantize_gptq(qweight, qzeros, scales, g_idx + 1, 4, true); },
                      "outside the 2 groups");
  expect_kernel_error(
      [&] { dequantize_gptq(qweight, qzeros, scales, g_idx.narrow(0, 0, 128), 4, 1); },
      "unpack_gptq_qweight");
}

TEST(Malformed, AwqRefusesBadInputs) {
  const at::Tensor q = random_codes(64, 256, 4, 2);
  expect_kernel_error([&] { pack_awq_gemm(q.narrow(0, 0, 60)); }, "out_features 60");
  expect_kernel_error([&] { pack_awq_gemm(q.to(at::kChar)); }, "must be Byte");
  expect_kernel_error([&] { pack_awq_gemm(at::full({8, 4}, 16, at::kByte)); }, "codes above 15");
  expect_kernel_error([&] { pack_awq_gemv(q.narrow(1, 0, 252)); }, "in_features 252");
  expect_kernel_error(
      [&] {
        pack_awq_gemv_zeros(at::ones({64, 8}, at::kByte), 16);
      },
      "group_size 16");
  expect_kernel_error([&] { awq_gemv_scales(at::ones({64, 2}, at::kInt), 128); }, "floating");
  expect_kernel_error(
      [&] {
        unpack_awq_gemv_zeros(at::zeros({64, 1}, at::kInt), 9);
      },
      "num_groups 9");
  const at::Tensor qweight = pack_awq_gemm(q),
                   qzeros = pack_awq_gemm_zeros(at::ones({64, 2}, at::kByte));
  const at::Tensor scales = at::ones({2, 64}, at::kHalf);
  expect_kernel_error([&] { dequantize_awq_gemm(qweight, qzeros, scales, 96); }, "group_size 96");
  expect_kernel_error([&] { dequantize_awq_gemm(qweight, qzeros, scales, 64); }, "qzeros");
  expect_kernel_error([&] { dequantize_awq_gemm(qweight, qzeros, scales.t(), 128); }, "scales");
  expect_kernel_error(
      [&] {
        awq_to_gptq_v1(qweight, pack_awq_gemm_zeros(at::ones({32, 2}, at::kByte)));
      },
      "qzeros");
}

// ---- work split between threads
// ------------------------------------------------------------------------

// The packers and dequantizers split rows (and 8 x 8 transpose tiles) between threads: 544 x 1024
// codes are split unevenly on 2 and 3 threads along both dimensions, and the bytes must not change.
TEST(Threads, PackingGivesTheSameBytesOnMoreThreads) {
  const int64_t out = 544, in = 1024, group = 128;
  const at::Tensor q = random_codes(out, in, 4, 21), q3 = q.bitwise_and(7);
  const at::Tensor z = random_codes(out, in / group, 4, 22);
  at::Generator gen = at::detail::createCPUGenerator(23);
  const at::Tensor scales = at::rand({in / group, out}, gen) * 0.1 + 0.01;
  const at::Tensor g_idx = at::div(at::arange(in, at::kInt), group, "floor");
  testing::expect_same_bits_on_more_threads(
      [&] {
        const at::Tensor gptq = pack_gptq_qweight(q, 4), gptq_zeros = pack_gptq_qzeros(z, 4, true);
        const at::Tensor awq = pack_awq_gemm(q), awq_zeros = pack_awq_gemm_zeros(z);
        return std::vector<at::Tensor>{gptq,
                                       gptq_zeros,
                                       pack_gptq_qweight(q3, 3),
                                       unpack_gptq_qweight(gptq, 4, in),
                                       dequantize_gptq(gptq, gptq_zeros, scales, g_idx, 4, true),
                                       awq,
                                       unpack_awq_gemm(awq),
                                       dequantize_awq_gemm(awq, awq_zeros, scales, group),
                                       pack_awq_gemv(q),
                                       awq_to_gptq_v1(awq, awq_zeros).qweight};
      },
      "packing");
}

}  // namespace
}  // namespace qplug::packing
