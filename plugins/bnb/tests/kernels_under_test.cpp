#include "kernels_under_test.hpp"

#include "simde_isas.hpp"

namespace qplug::bnb {

// kernels_avx512_emulated.cpp
const CpuKernels& avx512_emulated_kernels();
const CpuKernels& avx512_bf16_emulated_kernels();
// kernels_avx2_vnni_emulated.cpp
const CpuKernels& avx2_vnni_emulated_kernels();

std::vector<std::string> isas_under_test() {
  return testing::with_simde(available_isas(), {"avx2_vnni", "avx512", "avx512_bf16"});
}

const CpuKernels& kernels_under_test(const std::string& isa) {
  if (isa == testing::simde_name("avx2_vnni")) return avx2_vnni_emulated_kernels();
  if (isa == testing::simde_name("avx512")) return avx512_emulated_kernels();
  if (isa == testing::simde_name("avx512_bf16")) return avx512_bf16_emulated_kernels();
  return cpu_kernels(isa);
}

}  // namespace qplug::bnb
