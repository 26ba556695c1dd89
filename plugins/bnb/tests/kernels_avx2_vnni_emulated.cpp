// The avx2_vnni kernels with AVX-VNNI's vpdpbusd taken from SIMDe (its AVX512-VNNI 256-bit form,
// which computes the same lanes), so that their tests run on every AVX2 processor (this project's
// CI machine has no AVX-VNNI). Compiled by qplug_add_simde_kernel_source: -mavx2 -mfma -mf16c.
#include <immintrin.h>

#include <simde/x86/avx512.h>

#define _mm256_dpbusd_avx_epi32 simde_mm256_dpbusd_epi32
#define avx2_vnni_kernels avx2_vnni_emulated_kernels
#include "kernels/cpu/kernels_avx2_vnni.cpp"
