#include "awq_kernel.hpp"

#include <map>
#include <vector>

#include <ATen/ATen.h>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/cpu_linear_kernel.hpp>
#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/torch_interop.hpp>

#include "awq_algorithm.hpp"
#include "int4/int4_weight.hpp"
#include "packing.hpp"

namespace qplug::awq {

namespace {

constexpr int kBits = 4;

// AutoAWQ's WQLinear layers read group_size -1 as one group over the whole row.
int64_t resolved(int64_t in, int64_t group_size) {
  return group_size == -1 ? in : group_size;
}

// The codes, true zeros and scales of one layer, whatever layout they were stored in.
struct Unpacked {
  at::Tensor codes;   // uint8 [out, in]
  at::Tensor zeros;   // uint8 [out, G]
  at::Tensor scales;  // float32 [out, G]
};

// W[o, j] = s[o, g] * (q[o, j] - z[o, g]), g = j / group_size: the integer difference is exact in
// float32, so this rounds once, exactly as AutoAWQ's dequantize_gemm does.
at::Tensor dequantize_unpacked(const Unpacked& u, int64_t group_size) {
  const at::Tensor z = u.zeros.to(at::kFloat).repeat_interleave(group_size, 1);
  const at::Tensor s = u.scales.repeat_interleave(group_size, 1);
  return s * (u.codes.to(at::kFloat) - z);
}

class AwqKernel final : public CpuLinearKernel {
 public:
  explicit AwqKernel(const LinearKernelArgs& args)
      : CpuLinearKernel(args, "AWQ"),
        settings_(settings_of(*args.config)),
        group_size_(resolved(args.shape.in_features, settings_.group_size)),
        groups_(group_count(args.shape.in_features, settings_.group_size)) {
    if (!args.pre_quantized && !settings_.rtn)
      throw KernelError("the AWQ kernel of '" + args.layer +
                        "' holds packed weights only: AWQ quantizes with calibration, not while "
                        "loading (set rtn: true for round-to-nearest)");
    if (auto reason = awq_layout_reason(args.shape.in_features, args.shape.out_features,
                                        settings_.group_size, settings_.version))
      throw KernelError("the AWQ " + std::string(to_string(settings_.version)) +
                        " layout cannot hold '" + args.layer + "': " + *reason);
  }

  std::string name() const override { return std::string("awq_") + to_string(settings_.version); }
  std::string quant_method() const override { return "awq"; }

  std::vector<TensorSpec> tensor_specs() const override {
    const int64_t in = args_.shape.in_features, out = args_.shape.out_features;
    std::vector<TensorSpec> specs;
    if (settings_.version == AwqVersion::Gemm) {
      specs = {{"qweight", {in, out / 8}, DType::I32},
               {"qzeros", {groups_, out / 8}, DType::I32},
               {"scales", {groups_, out}, DType::F16}};
    } else {
      const int64_t width = packing::awq_gemv_zeros_width(groups_, group_size_);
      specs = {{"qweight", {out, in / 8}, DType::I32},
               {"qzeros", {out, width}, DType::I32},
               {"scales", {out, width * 8}, DType::F16}};
    }
    if (args_.shape.has_bias) specs.push_back({"bias", {out}, DType::F16});
    return specs;
  }

  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& spec : tensor_specs()) {
      auto it = stored_.find(spec.suffix);
      if (it != stored_.end())
        out.emplace_back(spec.suffix, it->second);
      else if (spec.suffix == "qweight" && int4_.defined())
        out.emplace_back(spec.suffix, settings_.version == AwqVersion::Gemm
                                          ? packing::pack_awq_gemm(codes())
                                          : packing::pack_awq_gemv(codes()));
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
                         shape_string(spec.shape) + " that version " +
                         to_string(settings_.version) + " and group_size " +
                         std::to_string(settings_.group_size) + " imply");
      // Packed words reinterpreted from another dtype would be garbage; scales and bias are
      // plain numbers and only change precision.
      if (spec.dtype == DType::I32 && value.scalar_type() != at::kInt)
        fail(suffix, "must be int32 (packed 4-bit codes), got " +
                         std::string(c10::toString(value.scalar_type())));
      if (spec.dtype != DType::I32 && !at::isFloatingType(value.scalar_type()))
        fail(suffix,
             "must be floating point, got " + std::string(c10::toString(value.scalar_type())));
      stored_[suffix] = value.to(to_scalar_type(spec.dtype)).contiguous();
      return;
    }
    fail(suffix, std::string("unexpected tensor for an AWQ ") + to_string(settings_.version) +
                     " layer (it holds qweight, qzeros, scales and bias)");
  }

  void process_weights_after_loading() override {
    const Unpacked u = unpack();
    const int64_t in = args_.shape.in_features;
    if (int4::Int4Weight::supports(in, groups_)) {
      const at::Tensor g_idx =
          (at::arange(in, at::TensorOptions().dtype(at::kInt)) / group_size_).to(at::kInt);
      int4_ = int4::Int4Weight(packing::pack_gptq_qweight(u.codes, kBits), u.zeros,
                               u.scales.t().contiguous(), g_idx);
      dense_ = at::Tensor();
      // The int4 weight holds the codes; they are packed AWQ's way again only to be saved.
      stored_.erase("qweight");
    } else {
      dense_ = dequantize_unpacked(u, group_size_);
    }
    bias_ =
        stored_.count("bias") ? stored_.at("bias").to(to_scalar_type(args_.dtype)) : at::Tensor();
  }

  at::Tensor apply(const at::Tensor& x) override {
    const int64_t in = args_.shape.in_features, out = args_.shape.out_features;
    if (x.dim() == 0 || x.size(-1) != in)
      throw KernelError("layer '" + args_.layer + "' takes inputs of " + std::to_string(in) +
                        " features, got shape " + shape_string(x.sizes().vec()));
    if (!int4_.defined() && !dense_.defined())
      throw KernelError("layer '" + args_.layer + "' was used before its AWQ weights loaded");
    return int4::linear_forward(x, int4_, dense_, bias_, in, out);
  }

  at::Tensor dequantize(DType dtype) const override {
    const at::Tensor dense = dense_.defined() ? dense_ : dequantize_unpacked(unpack(), group_size_);
    return dense.to(to_scalar_type(dtype));
  }

 private:
  const at::Tensor& stored(const std::string& suffix) const {
    auto it = stored_.find(suffix);
    if (it == stored_.end()) fail(suffix, "missing tensor of an AWQ layer");
    return it->second;
  }

  // uint8 [out, in]: from the checkpoint's qweight, or from the int4 weight once that holds them.
  at::Tensor codes() const {
    if (!stored_.count("qweight") && int4_.defined())
      return packing::unpack_gptq_qweight(int4_.qweight(), kBits, args_.shape.in_features);
    return settings_.version == AwqVersion::Gemm ? packing::unpack_awq_gemm(stored("qweight"))
                                                 : packing::unpack_awq_gemv(stored("qweight"));
  }

  Unpacked unpack() const {
    for (const auto& spec : tensor_specs())  // each missing tensor named (codes() checks qweight)
      if (spec.suffix != "qweight") stored(spec.suffix);
    Unpacked u;
    u.codes = codes();
    if (settings_.version == AwqVersion::Gemm) {
      u.zeros = packing::unpack_awq_gemm_zeros(stored("qzeros"));
      u.scales = stored("scales").t().to(at::kFloat).contiguous();
    } else {
      u.zeros = packing::unpack_awq_gemv_zeros(stored("qzeros"), groups_);
      u.scales = packing::unpack_awq_gemv_scales(stored("scales"), groups_).to(at::kFloat);
    }
    return u;
  }

  // AutoAWQ's pseudo-quantization without the scale search: each group rounded to nearest with
  // the min/max range AWQ uses, packed exactly as a calibrated layer would be.
  void round_to_nearest(const at::Tensor& weight) {
    if (!at::isfinite(weight).all().item<bool>())
      throw KernelError("layer '" + args_.layer + "' has NaN or infinite weights");
    const AwqCodes q = quantize_codes(weight.to(at::kFloat), settings_.group_size, kBits);
    const at::Tensor scales = q.scales.to(at::kHalf);
    if (settings_.version == AwqVersion::Gemm) {
      load_tensor("qweight", packing::pack_awq_gemm(q.codes));
      load_tensor("qzeros", packing::pack_awq_gemm_zeros(q.zeros));
      load_tensor("scales", scales.t().contiguous());
    } else {
      load_tensor("qweight", packing::pack_awq_gemv(q.codes));
      load_tensor("qzeros", packing::pack_awq_gemv_zeros(q.zeros, group_size_));
      load_tensor("scales", packing::awq_gemv_scales(scales, group_size_));
    }
  }

  AwqSettings settings_;
  int64_t group_size_;  // -1 resolved to in_features
  int64_t groups_;
  std::map<std::string, at::Tensor> stored_;  // the checkpoint's tensors, as saved (qweight
                                              // only until int4_ holds the codes)
  int4::Int4Weight int4_;                     // the fast path, when the groups allow it
  at::Tensor dense_;                          // float32 [out, in] otherwise
};

}  // namespace

std::unique_ptr<LinearKernel> make_awq_kernel(const LinearKernelArgs& args) {
  if (args.config == nullptr)
    throw KernelError("the AWQ kernel of '" + args.layer + "' needs the method's config");
  return std::make_unique<AwqKernel>(args);
}

std::optional<std::string> awq_layout_reason(int64_t in_features, int64_t out_features,
                                             int64_t group_size, AwqVersion version) {
  if (auto reason = packing::awq_unpackable_reason(in_features, out_features, group_size))
    return reason;
  if (version == AwqVersion::Gemm) return std::nullopt;
  // GEMV packs along the inputs and pads its zeros to a width only some group sizes have.
  if (in_features % 8 != 0)
    return "in_features " + std::to_string(in_features) +
           " is not a multiple of 8 (AWQ gemv packs 8 inputs per word)";
  const int64_t gs = resolved(in_features, group_size);
  if (gs != 32 && gs != 64 && gs < 128)
    return "group_size " + std::to_string(gs) +
           " has no AWQ gemv layout (AutoAWQ's gemv takes 32, 64 or >= 128)";
  return std::nullopt;
}

int64_t awq_layer_bytes(int64_t in, int64_t out, bool bias, int64_t group_size,
                        AwqVersion version) {
  const int64_t groups = group_count(in, group_size);
  const int64_t bias_bytes = bias ? out * 2 : 0;
  if (version == AwqVersion::Gemm)
    return in * out / 2 + groups * out / 2 + groups * out * 2 + bias_bytes;
  const int64_t width = packing::awq_gemv_zeros_width(groups, resolved(in, group_size));
  return out * in / 2 + out * width * 4 + out * width * 8 * 2 + bias_bytes;
}

}  // namespace qplug::awq
