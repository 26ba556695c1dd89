// Exporting a plugin. In exactly one source file of the plugin:
//
//   #include <qplug/sdk/plugin.hpp>
//   static void register_my_plugin(qplug::Registrar& registrar) { registrar.add_quantizer(...); }
//   QPLUG_PLUGIN("my_plugin", "1.0.0", "Example Corp", "what it does", register_my_plugin)
//
// This exports, in the "qplug" ELF section, a pointer to the plugin's C descriptor under the name
// qplug_descriptor, and a second alias whose *name* is the ABI tag (see abi.hpp). The host reads
// both names without loading the library and refuses a mismatched build before any of its code
// runs. Build plugins with qplug_add_plugin() (CMake), which sets hidden visibility and the CUDA
// part of the tag.
#pragma once

#include <boost/dll/alias.hpp>

#include "qplug/sdk/abi.hpp"
#include "qplug/sdk/descriptor.h"
#include "qplug/sdk/registrar.hpp"

// For tests that need a plugin built "for another host": every identity field spelled out.
#define QPLUG_PLUGIN_WITH_ABI(NAME, VERSION, VENDOR, DESCRIPTION, REGISTER_FUNCTION, API_MAJOR, \
                              API_MINOR, TORCH_MAJOR, TORCH_MINOR, TORCH_PATCH, CXX11_ABI,      \
                              CUDA_MAJOR, CUDA_VERSION)                                         \
  namespace qplug_plugin_export_ {                                                              \
  static void register_trampoline(qplug_registrar* registrar) {                                 \
    REGISTER_FUNCTION(*reinterpret_cast<::qplug::Registrar*>(registrar));                       \
  }                                                                                             \
  static const qplug_plugin_descriptor descriptor = {QPLUG_DESCRIPTOR_MAGIC,                    \
                                                     sizeof(qplug_plugin_descriptor),           \
                                                     API_MAJOR,                                 \
                                                     API_MINOR,                                 \
                                                     TORCH_MAJOR,                               \
                                                     TORCH_MINOR,                               \
                                                     TORCH_PATCH,                               \
                                                     CXX11_ABI,                                 \
                                                     CUDA_VERSION,                              \
                                                     NAME,                                      \
                                                     VERSION,                                   \
                                                     VENDOR,                                    \
                                                     DESCRIPTION,                               \
                                                     &register_trampoline};                     \
  }                                                                                             \
  BOOST_DLL_ALIAS_SECTIONED(qplug_plugin_export_::descriptor, qplug_descriptor, qplug)          \
  BOOST_DLL_ALIAS_SECTIONED(                                                                    \
      qplug_plugin_export_::descriptor,                                                         \
      QPLUG_ABI_TAG_SYMBOL_OF(API_MAJOR, API_MINOR, TORCH_MAJOR, TORCH_MINOR, TORCH_PATCH,      \
                              CXX11_ABI, CUDA_MAJOR),                                           \
      qplug)

#define QPLUG_PLUGIN(NAME, VERSION, VENDOR, DESCRIPTION, REGISTER_FUNCTION)               \
  QPLUG_PLUGIN_WITH_ABI(NAME, VERSION, VENDOR, DESCRIPTION, REGISTER_FUNCTION,            \
                        QPLUG_SDK_API_MAJOR, QPLUG_SDK_API_MINOR, TORCH_VERSION_MAJOR,    \
                        TORCH_VERSION_MINOR, TORCH_VERSION_PATCH, _GLIBCXX_USE_CXX11_ABI, \
                        QPLUG_TORCH_CUDA_MAJOR, QPLUG_TORCH_CUDA_VERSION)
