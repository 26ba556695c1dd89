/* The plugin descriptor: a plain C struct every qplug plugin exports.
 *
 * The host reads it before any plugin code runs (besides what the dynamic loader itself runs), so
 * it must stay a C struct with a fixed layout: new fields are only ever appended, and struct_size
 * tells the host how much of it a plugin filled in.
 *
 * Plugins never fill it by hand: QPLUG_PLUGIN() in <qplug/sdk/plugin.hpp> does. */
#ifndef QPLUG_SDK_DESCRIPTOR_H
#define QPLUG_SDK_DESCRIPTOR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "QPLUGDSC" in little-endian byte order. */
#define QPLUG_DESCRIPTOR_MAGIC 0x43534447554C5051ULL

/* SDK API version. Major: incompatible changes (host and plugin must agree).
 * Minor: additions; a plugin may use a minor no newer than the host's. Additions only ever append
 * virtual functions to host-implemented classes and fields to the end of host-filled structs.
 * 1.1: ModelDescription::scaling_groups, Model::run_block_module / divide_output_channels,
 *      HostServices::run_block_calibration_on_original_activations (for AWQ).
 * 1.2: empty_for_weights (<qplug/sdk/tensor_memory.hpp>). */
#define QPLUG_SDK_API_MAJOR 1
#define QPLUG_SDK_API_MINOR 2

/* The ELF section that holds qplug's exported aliases, and the alias names. */
#define QPLUG_EXPORT_SECTION qplug
#define QPLUG_DESCRIPTOR_SYMBOL "qplug_descriptor"
#define QPLUG_ABI_TAG_PREFIX "qplug_abi__"

/* Opaque handle to the host's registrar (a qplug::Registrar in C++). */
typedef struct qplug_registrar qplug_registrar;

/* Adds the plugin's quantizers, kernels, patches and schemas to the registrar. May throw a C++
 * exception; the host catches it and rejects the plugin. */
typedef void (*qplug_register_fn)(qplug_registrar* registrar);

typedef struct qplug_plugin_descriptor {
  uint64_t magic;       /* QPLUG_DESCRIPTOR_MAGIC */
  uint32_t struct_size; /* sizeof(qplug_plugin_descriptor) as the plugin saw it */
  uint16_t api_major;   /* QPLUG_SDK_API_MAJOR the plugin was built with */
  uint16_t api_minor;   /* QPLUG_SDK_API_MINOR the plugin was built with */
  uint16_t torch_major; /* LibTorch version the plugin was compiled against */
  uint16_t torch_minor;
  uint16_t torch_patch;
  uint16_t cxx11_abi;    /* _GLIBCXX_USE_CXX11_ABI of the plugin's build (0 or 1) */
  uint32_t cuda_version; /* CUDA version of that LibTorch as major*1000 + minor*10; 0 = CPU only */
  const char* name;      /* short plugin name, [a-z0-9_-]+, e.g. "bnb" */
  const char* version;   /* semantic version of the plugin, e.g. "1.2.0" */
  const char* vendor;    /* who ships it */
  const char* description;
  qplug_register_fn register_fn;
} qplug_plugin_descriptor;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QPLUG_SDK_DESCRIPTOR_H */
