// The bnb AVX-512 kernels compiled against SIMDe's portable AVX-512, so that the kernel tests run
// their logic on processors without AVX-512 (this project's CI machine among them).
#include "avx512_on_simde.hpp"

#define avx512_kernels avx512_emulated_kernels
#define avx512_vnni_kernels avx512_vnni_emulated_kernels
#define avx512_bf16_kernels avx512_bf16_emulated_kernels
#include "kernels/cpu/kernels_avx512.cpp"
