#include "qplug/sdk/abi.hpp"

namespace qplug {

std::string AbiIdentity::torch_version() const {
  return std::to_string(torch_major) + "." + std::to_string(torch_minor) + "." +
         std::to_string(torch_patch);
}

std::string AbiIdentity::tag() const {
  return std::string(QPLUG_ABI_TAG_PREFIX) + "sdk" + std::to_string(api_major) + "_" +
         std::to_string(api_minor) + "__torch" + std::to_string(torch_major) + "_" +
         std::to_string(torch_minor) + "_" + std::to_string(torch_patch) + "__cxx11abi" +
         std::to_string(cxx11_abi) + "__cuda" + std::to_string(cuda_major);
}

std::string AbiIdentity::describe() const {
  return "SDK API " + std::to_string(api_major) + "." + std::to_string(api_minor) + ", LibTorch " +
         torch_version() + ", CXX11 ABI " + std::to_string(cxx11_abi) + ", " +
         (cuda_major == 0 ? std::string("CPU-only") : "CUDA " + std::to_string(cuda_major));
}

}  // namespace qplug
