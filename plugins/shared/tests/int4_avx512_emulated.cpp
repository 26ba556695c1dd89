// The int4 AVX-512 kernels compiled against SIMDe's portable AVX-512, so that the kernel tests run
// their logic on processors without AVX-512 (this project's CI machine among them).
#include "avx512_on_simde.hpp"

#define int4_avx512 int4_avx512_emulated
#include "int4/int4_avx512.cpp"
