#include "kernels_under_test.hpp"

#include <algorithm>

namespace qplug::bnb {

const CpuKernels& avx512_emulated_kernels();  // kernels_avx512_emulated.cpp

namespace {
constexpr const char* kEmulated = "avx512_simde";
}

std::vector<std::string> isas_under_test() {
  std::vector<std::string> isas = available_isas();
  const bool native = std::find(isas.begin(), isas.end(), "avx512") != isas.end();
  const bool avx2 = std::find(isas.begin(), isas.end(), "avx2") != isas.end();
  if (!native && avx2) isas.push_back(kEmulated);
  return isas;
}

const CpuKernels& kernels_under_test(const std::string& isa) {
  return isa == kEmulated ? avx512_emulated_kernels() : cpu_kernels(isa);
}

}  // namespace qplug::bnb
