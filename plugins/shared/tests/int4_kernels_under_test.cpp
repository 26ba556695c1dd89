#include "int4_kernels_under_test.hpp"

#include "simde_isas.hpp"

namespace qplug::int4 {

const Int4Kernels& int4_avx512_emulated();  // int4_avx512_emulated.cpp

std::vector<std::string> int4_isas_under_test() {
  return testing::with_simde(int4_isas(), {"avx512"});
}

const Int4Kernels& int4_kernels_under_test(const std::string& isa) {
  return isa == testing::simde_name("avx512") ? int4_avx512_emulated() : int4_kernels(isa);
}

}  // namespace qplug::int4
