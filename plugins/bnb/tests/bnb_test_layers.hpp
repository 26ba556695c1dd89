// Helpers for the bnb tests that build layers the way the plugin hands them out: seeded random
// tensors, a validated config, a LinearKernel loaded with a weight, and its saved tensors by name.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/linear_kernel.hpp>
#include <qplug/sdk/value.hpp>

namespace qplug::bnb {

// Standard normal values from a generator seeded with `seed` (the same tensor on every run).
at::Tensor randn(std::vector<int64_t> shape, uint64_t seed);

// `keys` validated by the schema of `method` ("bitsandbytes_4bit" or "bitsandbytes_8bit").
QuantConfig config(const std::string& method,
                   std::initializer_list<std::pair<const char*, Value>> keys);

// The 4-bit or 8-bit kernel (by cfg's method) of a float32 layer "test.layer" with weight w
// [out, in] and an optional bias, quantized as it is while a model loads.
std::unique_ptr<LinearKernel> loaded_kernel(const QuantConfig& cfg, const at::Tensor& w,
                                            const at::Tensor& bias);

// The 4-bit kernel of a layer "test.layer" [out, in] without bias (float32 activations) loaded from
// a checkpoint's tensors, by suffix.
std::unique_ptr<LinearKernel> prequantized_kernel(
    const QuantConfig& cfg, int64_t out, int64_t in,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors);

// The tensor the kernel saves under `name` (a test failure, and an undefined tensor, if none).
at::Tensor tensor_named(const LinearKernel& kernel, const std::string& name);

}  // namespace qplug::bnb
