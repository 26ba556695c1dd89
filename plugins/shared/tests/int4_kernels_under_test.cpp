#include "int4_kernels_under_test.hpp"

#include <algorithm>

namespace qplug::int4 {

const Int4Kernels& int4_avx512_emulated();  // int4_avx512_emulated.cpp

namespace {
constexpr const char* kEmulated = "avx512_simde";
}

std::vector<std::string> int4_isas_under_test() {
  std::vector<std::string> isas = int4_isas();
  const bool native = std::find(isas.begin(), isas.end(), "avx512") != isas.end();
  const bool avx2 = std::find(isas.begin(), isas.end(), "avx2") != isas.end();
  if (!native && avx2) isas.push_back(kEmulated);
  return isas;
}

const Int4Kernels& int4_kernels_under_test(const std::string& isa) {
  return isa == kEmulated ? int4_avx512_emulated() : int4_kernels(isa);
}

}  // namespace qplug::int4
