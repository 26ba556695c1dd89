// Test-only: compiles a source file written with AVX-512 intrinsics for a processor without
// AVX-512, by mapping every intrinsic the kernels use onto SIMDe's portable implementation
// (Debian's libsimde-dev, header only). The kernel tests then run the AVX-512 kernels' logic
// (lane order, masks, permutes, tails) on any AVX2 machine, CI included; only their speed needs
// AVX-512 hardware.
//
// Include this first in a translation unit compiled with -mavx2 -mfma -mf16c, then the kernel's
// .cpp. An intrinsic a kernel starts using that is not mapped here fails to compile ("inlining
// failed: target specific option mismatch"): add it below.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include <simde/x86/avx512.h>

namespace qplug::testing::simde_extra {

// The intrinsics SIMDe 0.7.4 lacks, lane by lane as Intel's guide defines them.

inline simde__m512 cvtepi32_ps(simde__m512i a) {
  int32_t in[16];
  float out[16];
  simde_mm512_storeu_si512(in, a);
  for (int i = 0; i < 16; ++i)
    out[i] = static_cast<float>(in[i]);
  return simde_mm512_loadu_ps(out);
}

// Round to nearest even (the default MXCSR mode); out of range or NaN gives INT32_MIN.
inline simde__m512i cvtps_epi32(simde__m512 a) {
  float in[16];
  int32_t out[16];
  simde_mm512_storeu_ps(in, a);
  for (int i = 0; i < 16; ++i) {
    const float r = std::nearbyint(in[i]);
    out[i] = (r >= -2147483648.0f && r < 2147483648.0f) ? static_cast<int32_t>(r) : INT32_MIN;
  }
  return simde_mm512_loadu_si512(out);
}

inline simde__m512i cvtepu8_epi32(__m128i a) {
  uint8_t in[16];
  int32_t out[16];
  std::memcpy(in, &a, 16);
  for (int i = 0; i < 16; ++i)
    out[i] = in[i];
  return simde_mm512_loadu_si512(out);
}

// Eight int64 lanes truncated to their low bytes, the upper 8 bytes zero.
inline __m128i cvtepi64_epi8(simde__m512i a) {
  int64_t in[8];
  uint8_t out[16] = {};
  simde_mm512_storeu_si512(in, a);
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<uint8_t>(in[i]);
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(out));
}

// float16 conversions of 16 lanes as two F16C halves; rounding is to nearest even whatever the
// immediate says (the kernels ask for nothing else).
inline __m256i cvtps_ph(simde__m512 a, int) {
  float in[16];
  simde_mm512_storeu_ps(in, a);
  const __m128i low = _mm256_cvtps_ph(_mm256_loadu_ps(in), _MM_FROUND_TO_NEAREST_INT);
  const __m128i high = _mm256_cvtps_ph(_mm256_loadu_ps(in + 8), _MM_FROUND_TO_NEAREST_INT);
  return _mm256_set_m128i(high, low);
}

inline simde__m512 cvtph_ps(__m256i a) {
  float out[16];
  _mm256_storeu_ps(out, _mm256_cvtph_ps(_mm256_castsi256_si128(a)));
  _mm256_storeu_ps(out + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1)));
  return simde_mm512_loadu_ps(out);
}

inline __m256 extractf32x8_ps(simde__m512 a, int half) {
  float in[16];
  simde_mm512_storeu_ps(in, a);
  return _mm256_loadu_ps(in + 8 * half);
}

// Masked loads and stores touch only the selected lanes' memory, as the instructions do.
inline simde__m512 maskz_loadu_ps(simde__mmask16 mask, const void* p) {
  float out[16] = {};
  for (int i = 0; i < 16; ++i)
    if (mask >> i & 1) std::memcpy(&out[i], static_cast<const float*>(p) + i, 4);
  return simde_mm512_loadu_ps(out);
}

template <typename Lane, typename Mask, int kLanes>
simde__m512i maskz_loadu_lanes(Mask mask, const void* p) {
  Lane out[kLanes] = {};
  for (int i = 0; i < kLanes; ++i)
    if (mask >> i & 1) std::memcpy(&out[i], static_cast<const Lane*>(p) + i, sizeof(Lane));
  return simde_mm512_loadu_si512(out);
}

inline simde__m512i maskz_loadu_epi8(simde__mmask64 mask, const void* p) {
  return maskz_loadu_lanes<uint8_t, simde__mmask64, 64>(mask, p);
}

inline simde__m512i maskz_loadu_epi16(simde__mmask32 mask, const void* p) {
  return maskz_loadu_lanes<uint16_t, simde__mmask32, 32>(mask, p);
}

inline simde__m512i maskz_loadu_epi32(simde__mmask16 mask, const void* p) {
  return maskz_loadu_lanes<uint32_t, simde__mmask16, 16>(mask, p);
}

inline void mask_storeu_ps(void* p, simde__mmask16 mask, simde__m512 a) {
  float in[16];
  simde_mm512_storeu_ps(in, a);
  for (int i = 0; i < 16; ++i)
    if (mask >> i & 1) std::memcpy(static_cast<float*>(p) + i, &in[i], 4);
}

inline void mask_storeu_epi8(void* p, simde__mmask16 mask, __m128i a) {
  uint8_t in[16];
  std::memcpy(in, &a, 16);
  for (int i = 0; i < 16; ++i)
    if (mask >> i & 1) static_cast<uint8_t*>(p)[i] = in[i];
}

// GCC's reduction tree: halves of 8, then 4, then pairs (0+2, 1+3), then the last two.
template <typename T, typename Op>
T reduce_tree(const T (&v)[16], Op op) {
  T a[8], b[4];
  for (int i = 0; i < 8; ++i)
    a[i] = op(v[i + 8], v[i]);
  for (int i = 0; i < 4; ++i)
    b[i] = op(a[i + 4], a[i]);
  return op(op(b[0], b[2]), op(b[1], b[3]));
}

inline float reduce_add_ps(simde__m512 a) {
  float v[16];
  simde_mm512_storeu_ps(v, a);
  return reduce_tree(v, [](float x, float y) { return x + y; });
}

inline float reduce_max_ps(simde__m512 a) {
  float v[16];
  simde_mm512_storeu_ps(v, a);
  return reduce_tree(v, [](float x, float y) { return x > y ? x : y; });
}

inline int32_t reduce_add_epi32(simde__m512i a) {
  int32_t v[16];
  simde_mm512_storeu_si512(v, a);
  return reduce_tree(v, [](int32_t x, int32_t y) {
    return static_cast<int32_t>(static_cast<uint32_t>(x) + static_cast<uint32_t>(y));
  });
}

}  // namespace qplug::testing::simde_extra

// Kernel files compile their VBMI code as any other here (kernels_avx512.cpp).
#define QPLUG_AVX512_ON_SIMDE 1

// Without optimization GCC defines the immediate-operand intrinsics as macros, hence each #undef.
#define __m512 simde__m512
#define __m512i simde__m512i
#define __mmask16 simde__mmask16
#define __mmask32 simde__mmask32
#define __mmask64 simde__mmask64
#define __m512bh simde__m512bh

#undef _mm512_abs_ps
#define _mm512_abs_ps simde_mm512_abs_ps
#undef _mm512_add_epi32
#define _mm512_add_epi32 simde_mm512_add_epi32
#undef _mm512_add_ps
#define _mm512_add_ps simde_mm512_add_ps
#undef _mm512_and_si512
#define _mm512_and_si512 simde_mm512_and_si512
#undef _mm512_castps128_ps512
#define _mm512_castps128_ps512 simde_mm512_castps128_ps512
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 simde_mm512_castps512_ps256
#undef _mm512_cmp_ps_mask
#define _mm512_cmp_ps_mask simde_mm512_cmp_ps_mask
#undef _mm512_cvtepi8_epi16
#define _mm512_cvtepi8_epi16 simde_mm512_cvtepi8_epi16
#undef _mm512_cvtsepi32_epi8
#define _mm512_cvtsepi32_epi8 simde_mm512_cvtsepi32_epi8
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 simde_mm512_dpbusd_epi32
#undef _mm512_dpbf16_ps
#define _mm512_dpbf16_ps simde_mm512_dpbf16_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps simde_mm512_fmadd_ps
#undef _mm512_fmsub_ps
#define _mm512_fmsub_ps simde_mm512_fmsub_ps
#undef _mm512_fnmadd_ps
#define _mm512_fnmadd_ps simde_mm512_fnmadd_ps
#undef _mm512_load_ps
#define _mm512_load_ps simde_mm512_load_ps
#undef _mm512_load_si512
#define _mm512_load_si512 simde_mm512_load_si512
#undef _mm512_loadu_ps
#define _mm512_loadu_ps simde_mm512_loadu_ps
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 simde_mm512_loadu_si512
#undef _mm512_madd_epi16
#define _mm512_madd_epi16 simde_mm512_madd_epi16
#undef _mm512_mask_add_epi32
#define _mm512_mask_add_epi32 simde_mm512_mask_add_epi32
#undef _mm512_mask_or_epi32
#define _mm512_mask_or_epi32 simde_mm512_mask_or_epi32
#undef _mm512_max_ps
#define _mm512_max_ps simde_mm512_max_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps simde_mm512_mul_ps
#undef _mm512_or_si512
#define _mm512_or_si512 simde_mm512_or_si512
#undef _mm512_permutex2var_ps
#define _mm512_permutex2var_ps simde_mm512_permutex2var_ps
#undef _mm512_permutexvar_epi16
#define _mm512_permutexvar_epi16 simde_mm512_permutexvar_epi16
#undef _mm512_permutexvar_epi32
#define _mm512_permutexvar_epi32 simde_mm512_permutexvar_epi32
#undef _mm512_permutexvar_ps
#define _mm512_permutexvar_ps simde_mm512_permutexvar_ps
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 simde_mm512_set1_epi8
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 simde_mm512_set1_epi32
#undef _mm512_set1_epi64
#define _mm512_set1_epi64 simde_mm512_set1_epi64
#undef _mm512_set1_ps
#define _mm512_set1_ps simde_mm512_set1_ps
#undef _mm512_set_epi32
#define _mm512_set_epi32 simde_mm512_set_epi32
#undef _mm512_setzero_ps
#define _mm512_setzero_ps simde_mm512_setzero_ps
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 simde_mm512_setzero_si512
#undef _mm512_slli_epi64
#define _mm512_slli_epi64 simde_mm512_slli_epi64
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 simde_mm512_srli_epi16
#undef _mm512_srli_epi32
#define _mm512_srli_epi32 simde_mm512_srli_epi32
#undef _mm512_srli_epi64
#define _mm512_srli_epi64 simde_mm512_srli_epi64
#undef _mm512_store_si512
#define _mm512_store_si512 simde_mm512_store_si512
#undef _mm512_store_ps
#define _mm512_store_ps simde_mm512_store_ps
#undef _mm512_storeu_ps
#define _mm512_storeu_ps simde_mm512_storeu_ps
#undef _mm512_castsi512_ps
#define _mm512_castsi512_ps simde_mm512_castsi512_ps
#undef _mm512_mask_blend_epi8
#define _mm512_mask_blend_epi8 simde_mm512_mask_blend_epi8
#undef _mm512_movepi8_mask
#define _mm512_movepi8_mask simde_mm512_movepi8_mask
#undef _mm512_permutex2var_epi8
#define _mm512_permutex2var_epi8 simde_mm512_permutex2var_epi8
#undef _mm512_permutexvar_epi8
#define _mm512_permutexvar_epi8 simde_mm512_permutexvar_epi8
#undef _mm512_unpackhi_epi16
#define _mm512_unpackhi_epi16 simde_mm512_unpackhi_epi16
#undef _mm512_unpackhi_epi8
#define _mm512_unpackhi_epi8 simde_mm512_unpackhi_epi8
#undef _mm512_unpacklo_epi16
#define _mm512_unpacklo_epi16 simde_mm512_unpacklo_epi16
#undef _mm512_unpacklo_epi8
#define _mm512_unpacklo_epi8 simde_mm512_unpacklo_epi8

#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps ::qplug::testing::simde_extra::cvtepi32_ps
#undef _mm512_cvtepi64_epi8
#define _mm512_cvtepi64_epi8 ::qplug::testing::simde_extra::cvtepi64_epi8
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 ::qplug::testing::simde_extra::cvtepu8_epi32
#undef _mm512_cvtps_epi32
#define _mm512_cvtps_epi32 ::qplug::testing::simde_extra::cvtps_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps ::qplug::testing::simde_extra::cvtph_ps
#undef _mm512_cvtps_ph
#define _mm512_cvtps_ph ::qplug::testing::simde_extra::cvtps_ph
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps ::qplug::testing::simde_extra::extractf32x8_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps ::qplug::testing::simde_extra::mask_storeu_ps
#undef _mm512_maskz_loadu_epi8
#define _mm512_maskz_loadu_epi8 ::qplug::testing::simde_extra::maskz_loadu_epi8
#undef _mm512_maskz_loadu_epi16
#define _mm512_maskz_loadu_epi16 ::qplug::testing::simde_extra::maskz_loadu_epi16
#undef _mm512_maskz_loadu_epi32
#define _mm512_maskz_loadu_epi32 ::qplug::testing::simde_extra::maskz_loadu_epi32
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps ::qplug::testing::simde_extra::maskz_loadu_ps
#undef _mm512_reduce_add_epi32
#define _mm512_reduce_add_epi32 ::qplug::testing::simde_extra::reduce_add_epi32
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps ::qplug::testing::simde_extra::reduce_add_ps
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps ::qplug::testing::simde_extra::reduce_max_ps
#undef _mm_mask_storeu_epi8
#define _mm_mask_storeu_epi8 ::qplug::testing::simde_extra::mask_storeu_epi8
