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

at::Tensor tensor_named(const LinearKernel& kernel, const std::string& name) {
  for (const auto& [n, t] : kernel.tensors())
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return at::Tensor();
}

}  // namespace qplug::bnb
