// The binary-compatibility identity of a build: SDK API version, LibTorch version, C++11 string ABI
// and CUDA major. LibTorch has no stable C++ ABI, so host and plugin must agree on all of these;
// the host checks them (from an export's *name*, before loading the plugin) and refuses a mismatch
// with both values and the fix.
#pragma once

#include <string>  // defines _GLIBCXX_USE_CXX11_ABI

#include <torch/version.h>

#include "qplug/sdk/descriptor.h"

// Set by the build (qplug_add_plugin / qplug_torch_abi.cmake) from the LibTorch it compiles
// against; 0 means a CPU-only LibTorch.
#ifndef QPLUG_TORCH_CUDA_VERSION
#define QPLUG_TORCH_CUDA_VERSION 0
#endif
#ifndef QPLUG_TORCH_CUDA_MAJOR
#define QPLUG_TORCH_CUDA_MAJOR 0
#endif
#ifndef _GLIBCXX_USE_CXX11_ABI
#define _GLIBCXX_USE_CXX11_ABI 0
#endif

// The ABI tag is an exported symbol *name*, e.g.
//   qplug_abi__sdk1_0__torch1_13_0__cxx11abi1__cuda0
// (SDK API 1.0, LibTorch 1.13.0, C++11 string ABI on, CPU-only LibTorch)
// so the host can read it with boost::dll::library_info without running any plugin code.
#define QPLUG_ABI_TAG_SYMBOL_PASTE(amaj, amin, tmaj, tmin, tpat, abi, cuda) \
  qplug_abi__sdk##amaj##_##amin##__torch##tmaj##_##tmin##_##tpat##__cxx11abi##abi##__cuda##cuda
#define QPLUG_ABI_TAG_SYMBOL_OF(amaj, amin, tmaj, tmin, tpat, abi, cuda) \
  QPLUG_ABI_TAG_SYMBOL_PASTE(amaj, amin, tmaj, tmin, tpat, abi, cuda)
#define QPLUG_ABI_TAG_SYMBOL                                                                \
  QPLUG_ABI_TAG_SYMBOL_OF(QPLUG_SDK_API_MAJOR, QPLUG_SDK_API_MINOR, TORCH_VERSION_MAJOR,    \
                          TORCH_VERSION_MINOR, TORCH_VERSION_PATCH, _GLIBCXX_USE_CXX11_ABI, \
                          QPLUG_TORCH_CUDA_MAJOR)

namespace qplug {

// A build's identity, decoded from a descriptor or an ABI tag.
struct AbiIdentity {
  int api_major = 0;
  int api_minor = 0;
  int torch_major = 0;
  int torch_minor = 0;
  int torch_patch = 0;
  int cxx11_abi = 0;
  int cuda_major = 0;

  std::string torch_version() const;  // "1.13.0"
  std::string tag() const;            // the symbol name above
  std::string describe() const;       // "SDK API 1, LibTorch 1.13.0, CXX11 ABI 1, CPU-only"
};

// The identity this very translation unit is compiled with.
inline AbiIdentity compiled_abi() {
  AbiIdentity id;
  id.api_major = QPLUG_SDK_API_MAJOR;
  id.api_minor = QPLUG_SDK_API_MINOR;
  id.torch_major = TORCH_VERSION_MAJOR;
  id.torch_minor = TORCH_VERSION_MINOR;
  id.torch_patch = TORCH_VERSION_PATCH;
  id.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
  id.cuda_major = QPLUG_TORCH_CUDA_MAJOR;
  return id;
}

}  // namespace qplug
