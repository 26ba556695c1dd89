// The avx2_vnni kernels with AVX-VNNI's vpdpbusd computed lane by lane, so that their tests run on
// every AVX2 processor (this project's CI machine has no AVX-VNNI). Compiled with -mavx2 -mfma
// -mf16c; SIMDe 0.7.4 has no AVX-VNNI, hence this one-instruction stand-in.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace qplug::testing::emulated_avx_vnni {

// vpdpbusd as Intel's guide defines it: in each of the 8 int32 lanes, acc + the 4 products of
// unsigned bytes of a by signed bytes of b, wrapping modulo 2^32.
inline __m256i dpbusd(__m256i acc, __m256i a, __m256i b) {
  uint8_t ua[32];
  int8_t sb[32];
  uint32_t lanes[8];
  std::memcpy(ua, &a, 32);
  std::memcpy(sb, &b, 32);
  std::memcpy(lanes, &acc, 32);
  for (int lane = 0; lane < 8; ++lane)
    for (int j = 0; j < 4; ++j)
      lanes[lane] += static_cast<uint32_t>(int32_t{ua[4 * lane + j]} * int32_t{sb[4 * lane + j]});
  __m256i out;
  std::memcpy(&out, lanes, 32);
  return out;
}

}  // namespace qplug::testing::emulated_avx_vnni

#define _mm256_dpbusd_avx_epi32 qplug::testing::emulated_avx_vnni::dpbusd
#define avx2_vnni_kernels avx2_vnni_emulated_kernels
#include "kernels/cpu/kernels_avx2_vnni.cpp"
