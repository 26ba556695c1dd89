#include "gptq_kernel.hpp"

#include <map>

#include <ATen/ATen.h>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/cpu_linear_kernel.hpp>
#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/torch_interop.hpp>

#include "gptq_algorithm.hpp"
#include "gptq_config.hpp"
#include "int4/int4_weight.hpp"
#include "packing.hpp"

namespace qplug::gptq {

namespace {

int64_t group_count(int64_t in, int64_t group_size) {
  return group_size <= 0 ? 1 : (in + group_size - 1) / group_size;
}

class GptqKernel final : public CpuLinearKernel {
 public:
  explicit GptqKernel(const LinearKernelArgs& args)
      : CpuLinearKernel(args, "GPTQ"), settings_(settings_of(*args.config)) {
    if (!args.pre_quantized && !settings_.rtn)
      throw KernelError("the GPTQ kernel of '" + args.layer +
                        "' holds packed weights only: GPTQ quantizes with calibration, not while "
                        "loading (set rtn: true for round-to-nearest)");
  }

  std::string name() const override { return "gptq_int" + std::to_string(settings_.bits); }
  std::string quant_method() const override { return "gptq"; }

  std::vector<TensorSpec> tensor_specs() const override {
    const int64_t in = args_.shape.in_features, out = args_.shape.out_features;
    const int64_t groups = group_count(in, settings_.group_size);
    std::vector<TensorSpec> specs{{"qweight", {in * settings_.bits / 32, out}, DType::I32},
                                  {"qzeros", {groups, out * settings_.bits / 32}, DType::I32},
                                  {"scales", {groups, out}, DType::F16},
                                  {"g_idx", {in}, DType::I32}};
    if (args_.shape.has_bias) specs.push_back({"bias", {out}, DType::F16});
    return specs;
  }

  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const char* key : {"qweight", "qzeros", "scales", "g_idx", "bias"}) {
      auto it = stored_.find(key);
      if (it != stored_.end())
        out.emplace_back(key, it->second);
      else if (std::string(key) == "qweight" && int4_.defined())
        out.emplace_back(key, int4_.qweight());
    }
    return out;
  }

  void load_tensor(const std::string& suffix, const at::Tensor& value) override {
    if (!args_.pre_quantized && suffix == "weight") {
      round_to_nearest(value);
      return;
    }
    for (const auto& spec : tensor_specs()) {
      if (spec.suffix != suffix) continue;
      if (value.sizes().vec() != spec.shape)
        fail(suffix, "shape " + shape_string(value.sizes().vec()) + " does not match the " +
                         shape_string(spec.shape) + " that bits " + std::to_string(settings_.bits) +
                         " and group_size " + std::to_string(settings_.group_size) + " imply");
      stored_[suffix] = value.to(to_scalar_type(spec.dtype)).contiguous();
      return;
    }
    fail(suffix, "unexpected tensor for a GPTQ layer");
  }

  void process_weights_after_loading() override {
    for (const auto& spec : tensor_specs())
      if (!stored_.count(spec.suffix)) fail(spec.suffix, "missing tensor of a GPTQ layer");
    const at::Tensor& g_idx = stored_.at("g_idx");
    const int64_t groups = stored_.at("scales").size(0);
    if (g_idx.numel() > 0 &&
        (g_idx.min().item<int64_t>() < 0 || g_idx.max().item<int64_t>() >= groups))
      fail("g_idx", "holds group indices outside [0, " + std::to_string(groups) + ")");
    zeros_ = packing::unpack_gptq_qzeros(stored_.at("qzeros"), settings_.bits,
                                         args_.shape.out_features, settings_.v1);
    if (settings_.bits == 4 && int4::Int4Weight::supports(args_.shape.in_features, groups)) {
      int4_ = int4::Int4Weight(stored_.at("qweight"), zeros_, stored_.at("scales"), g_idx);
      // The int4 weight holds the codes in its own layout and gives the checkpoint's back to
      // tensors(): one copy of the layer's largest tensor instead of two.
      stored_.erase("qweight");
    }
    if (stored_.count("bias")) bias_ = stored_.at("bias").to(to_scalar_type(args_.dtype));
  }

  at::Tensor apply(const at::Tensor& x) override {
    const int64_t in = args_.shape.in_features, out = args_.shape.out_features;
    return int4::linear_forward(x, int4_, int4_.defined() ? at::Tensor() : dequantize(DType::F32),
                                bias_, in, out);
  }

  at::Tensor dequantize(DType dtype) const override {
    const at::Tensor dense =
        int4_.defined() ? int4_.dequantize()
                        : packing::dequantize_gptq(stored_.at("qweight"), stored_.at("qzeros"),
                                                   stored_.at("scales"), stored_.at("g_idx"),
                                                   settings_.bits, settings_.v1);
    return dense.to(to_scalar_type(dtype));
  }

 private:
  // GPTQ with an identity Hessian: no error propagates between columns, so each group is
  // rounded to nearest with the same scales and zeros GPTQ's find_params would choose.
  void round_to_nearest(const at::Tensor& weight) {
    if (!at::isfinite(weight).all().item<bool>())
      throw KernelError("layer '" + args_.layer + "' has NaN or infinite weights");
    GptqOptions options;
    options.bits = settings_.bits;
    options.group_size = settings_.group_size;
    options.sym = settings_.sym;
    options.mse = settings_.mse;
    options.min_zero = settings_.v1 ? 1 : 0;
    const int64_t in = args_.shape.in_features;
    const GptqResult r = quantize_layer(
        weight.to(at::kFloat), at::eye(in, at::TensorOptions().dtype(at::kFloat)), options);
    load_tensor("qweight", packing::pack_gptq_qweight(r.qint, settings_.bits));
    load_tensor("qzeros", packing::pack_gptq_qzeros(r.zero.round().clamp(0, 255).to(at::kByte),
                                                    settings_.bits, settings_.v1));
    load_tensor("scales", r.scale.t().contiguous().to(at::kHalf));
    load_tensor("g_idx", r.g_idx.to(at::kInt));
  }

  GptqSettings settings_;
  std::map<std::string, at::Tensor> stored_;
  at::Tensor zeros_;  // true zero points [out, G]
  int4::Int4Weight int4_;
};

}  // namespace

std::unique_ptr<LinearKernel> make_gptq_kernel(const LinearKernelArgs& args) {
  if (args.config == nullptr)
    throw KernelError("the GPTQ kernel of '" + args.layer + "' needs the method's config");
  return std::make_unique<GptqKernel>(args);
}

int64_t gptq_layer_bytes(int64_t in, int64_t out, bool bias, int bits, int64_t group_size) {
  const int64_t groups = group_count(in, group_size);
  return in * out * bits / 8 + groups * out * bits / 8 + groups * out * 2 + in * 4 +
         (bias ? out * 2 : 0);
}

}  // namespace qplug::gptq
