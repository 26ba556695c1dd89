#include "bnb_test_layers.hpp"

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "bnb_config.hpp"
#include "eight_bit_kernel.hpp"
#include "four_bit_kernel.hpp"

namespace qplug::bnb {

at::Tensor randn(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

QuantConfig config(const std::string& method,
                   std::initializer_list<std::pair<const char*, Value>> keys) {
  Value raw = Value::map();
  for (const auto& [k, v] : keys)
    raw.set(k, v);
  return make_schema(method).validate(raw);
}

std::unique_ptr<LinearKernel> loaded_kernel(const QuantConfig& cfg, const at::Tensor& w,
                                            const at::Tensor& bias) {
  LinearKernelArgs args;
  args.layer = "test.layer";
  args.shape = {w.size(1), w.size(0), bias.defined()};
  args.dtype = DType::F32;
  args.config = &cfg;
  auto kernel = cfg.quant_method() == "bitsandbytes_4bit" ? make_four_bit_kernel(args)
                                                          : make_eight_bit_kernel(args);
  kernel->load_tensor("weight", w);
  if (bias.defined()) kernel->load_tensor("bias", bias);
  kernel->process_weights_after_loading();
  return kernel;
}

std::unique_ptr<LinearKernel> prequantized_kernel(
    const QuantConfig& cfg, int64_t out, int64_t in,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  LinearKernelArgs args;
  args.layer = "test.layer";
  args.shape = {in, out, false};
  args.dtype = DType::F32;
  args.config = &cfg;
  args.pre_quantized = true;
  auto kernel = make_four_bit_kernel(args);
  for (const auto& [suffix, tensor] : tensors)
    kernel->load_tensor(suffix, tensor);
  kernel->process_weights_after_loading();
  return kernel;
}

at::Tensor tensor_named(const LinearKernel& kernel, const std::string& name) {
  for (const auto& [n, t] : kernel.tensors())
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return at::Tensor();
}

}  // namespace qplug::bnb
