// Picks the int4 kernel implementation once, at run time.
#include <cstdlib>

#include <qplug/sdk/errors.hpp>

#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

namespace {
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool has_avx512() {
  return __builtin_cpu_supports("avx512f");
}
}  // namespace

std::vector<std::string> int4_isas() {
  std::vector<std::string> isas{"scalar"};
  if (has_avx2()) isas.push_back("avx2");
  if (has_avx512()) isas.push_back("avx512");
  return isas;
}

const Int4Kernels& int4_kernels(const std::string& isa) {
  if (isa == "scalar") return int4_scalar();
  if (isa == "avx2" && has_avx2()) return int4_avx2();
  if (isa == "avx512" && has_avx512()) return int4_avx512();
  throw UnsupportedError("int4 CPU kernels '" + isa + "' are not available on this processor");
}

const Int4Kernels& int4_kernels() {
  static const Int4Kernels& chosen = []() -> const Int4Kernels& {
    if (const char* forced = std::getenv("QPLUG_INT4_ISA")) return int4_kernels(forced);
    return int4_kernels(int4_isas().back());
  }();
  return chosen;
}

}  // namespace qplug::int4
