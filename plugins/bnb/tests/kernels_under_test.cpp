#include "kernels_under_test.hpp"

#include "simde_isas.hpp"

namespace qplug::bnb {

const CpuKernels& avx512_emulated_kernels();  // kernels_avx512_emulated.cpp

std::vector<std::string> isas_under_test() {
  return testing::with_avx512_simde(available_isas());
}

const CpuKernels& kernels_under_test(const std::string& isa) {
  return isa == testing::kAvx512Simde ? avx512_emulated_kernels() : cpu_kernels(isa);
}

}  // namespace qplug::bnb
