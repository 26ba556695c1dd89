// The int4 kernel sets the tests run: every one this processor runs natively and, where it lacks
// AVX-512 but has AVX2, the AVX-512 set compiled against SIMDe ("avx512_simde"), so that the
// AVX-512 code is tested on every machine.
#pragma once

#include <string>
#include <vector>

#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

std::vector<std::string> int4_isas_under_test();
const Int4Kernels& int4_kernels_under_test(const std::string& isa);

}  // namespace qplug::int4
