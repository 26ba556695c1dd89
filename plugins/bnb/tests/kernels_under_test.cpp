#include "kernels_under_test.hpp"

#include <algorithm>

#include "simde_isas.hpp"

namespace qplug::bnb {

// kernels_avx512_emulated.cpp
const CpuKernels& avx512_emulated_kernels();
const CpuKernels& avx512_bf16_emulated_kernels();
// kernels_avx2_vnni_emulated.cpp
const CpuKernels& avx2_vnni_emulated_kernels();

namespace {

constexpr const char* kAvx2VnniEmulated = "avx2_vnni_emulated";

}  // namespace

std::vector<std::string> isas_under_test() {
  std::vector<std::string> isas = testing::with_simde(available_isas(), {"avx512", "avx512_bf16"});
  // Like the SIMDe builds, the emulated AVX-VNNI build runs wherever AVX2 does.
  if (std::find(isas.begin(), isas.end(), "avx2") != isas.end()) isas.push_back(kAvx2VnniEmulated);
  return isas;
}

const CpuKernels& kernels_under_test(const std::string& isa) {
  if (isa == kAvx2VnniEmulated) return avx2_vnni_emulated_kernels();
  if (isa == testing::simde_name("avx512")) return avx512_emulated_kernels();
  if (isa == testing::simde_name("avx512_bf16")) return avx512_bf16_emulated_kernels();
  return cpu_kernels(isa);
}

}  // namespace qplug::bnb
