#include "eight_bit_kernel.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/cpu_linear_kernel.hpp>
#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/tensor_memory.hpp>
#include <qplug/sdk/torch_interop.hpp>

#include "bnb_tensors.hpp"
#include "int8_activations.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

// 1 / (127 * 127) as the CUDA kernel spells it (the default backend's 6.200124e-05 is a typo).
constexpr float kInverseSquare127 = 6.200012e-05f;
// 1 / 127 as bitsandbytes multiplies by it when dequantizing (CB * SCB * this, bit for bit).
constexpr float kInverse127 = 7.874015718698502e-3f;

class EightBitKernel final : public CpuLinearKernel {
 public:
  explicit EightBitKernel(const LinearKernelArgs& args)
      : CpuLinearKernel(args, "bnb int8"),
        threshold_(static_cast<float>(args.config->get_double("llm_int8_threshold"))),
        kernels_(cpu_kernels()) {}

  std::string name() const override { return "bnb_int8"; }
  std::string quant_method() const override { return "bitsandbytes_8bit"; }

  std::vector<TensorSpec> tensor_specs() const override {
    return eight_bit_tensor_specs(args_.shape, args_.dtype);
  }

  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    if (!codes_.defined()) return out;
    out.emplace_back("weight", codes_);
    out.emplace_back("SCB", scb_);
    out.emplace_back("weight_format", at::zeros({}, at::TensorOptions().dtype(at::kByte)));
    if (bias_.defined()) out.emplace_back("bias", bias_);
    return out;
  }

  void load_tensor(const std::string& suffix, const at::Tensor& value) override {
    if (suffix == "bias") {
      bias_ = value.to(to_scalar_type(args_.dtype));
      bias_f32_ = bias_.to(at::kFloat).contiguous();
    } else if (!args_.pre_quantized) {
      if (suffix != "weight") fail(suffix, "unexpected tensor for a layer quantized while loading");
      quantize(value);
    } else if (suffix == "weight") {
      codes_ = value.contiguous();
    } else if (suffix == "SCB") {
      scb_ = value.to(at::kFloat).contiguous();
    } else if (suffix == "weight_format") {
      const int64_t format = value.item<int64_t>();
      if (format != 0)
        fail(suffix, "weight_format " + std::to_string(format) +
                         " (a GPU tile layout of old bitsandbytes) is not supported; save the "
                         "model again with a current bitsandbytes, which writes the row format 0");
    } else {
      fail(suffix, "unexpected tensor for a bitsandbytes 8-bit layer");
    }
  }

  void process_weights_after_loading() override {
    if (!codes_.defined()) fail("weight", "missing tensor");
    if (!scb_.defined()) fail("SCB", "missing tensor of a bitsandbytes 8-bit layer");
    if (args_.shape.has_bias && !bias_.defined()) fail("bias", "missing tensor");
    // Each weight row's sum, which the VNNI matmuls need on every call: once here instead.
    const int64_t rows = args_.shape.out_features, K = args_.shape.in_features;
    row_sums_ = at::empty({rows}, at::TensorOptions().dtype(at::kInt));
    const int8_t* codes = codes_.data_ptr<int8_t>();
    int32_t* sums = row_sums_.data_ptr<int32_t>();
    at::parallel_for(0, rows, 64, [&](int64_t first, int64_t last) {
      int8_row_sums(codes, K, first, last, sums);
    });
  }

  // MatMul8bitLt's inference path: int8_vectorwise_quant of the inputs, then
  // int8_mixed_scaled_mm: the int8 products scaled (plus the bias) in float32, cast to the inputs'
  // dtype, plus the outlier columns times their dequantized weight columns in that dtype.
  at::Tensor apply(const at::Tensor& x) override {
    const int64_t K = args_.shape.in_features, N = args_.shape.out_features;
    const at::Tensor x2 = x.reshape({-1, K});
    const int64_t M = x2.size(0);
    if (!row_sums_.defined())
      fail("weight", "used before process_weights_after_loading, which prepares it");
    const Int8Activations a = quantize_int8_activations(x2, threshold_, kernels_);
    at::Tensor acc = at::empty({M, N}, at::TensorOptions().dtype(at::kInt));
    at::Tensor y = at::empty({M, N}, at::TensorOptions().dtype(at::kFloat));
    const int8_t* cb = codes_.data_ptr<int8_t>();
    const int32_t* row_sums = row_sums_.data_ptr<int32_t>();
    const float* scb = scb_.data_ptr<float>();
    const float* bias = bias_f32_.defined() ? bias_f32_.data_ptr<float>() : nullptr;
    int32_t* sums = acc.data_ptr<int32_t>();
    float* out = y.data_ptr<float>();
    at::parallel_for(0, N, 16, [&](int64_t first, int64_t last) {
      kernels_.int8_matmul(a.codes, M, K, cb, row_sums, first, last, sums, N);
      // int8_mm_dequant: sum * (row scale * SCB) / (127 * 127) + bias, in float32.
      for (int64_t m = 0; m < M; ++m)
        for (int64_t o = first; o < last; ++o) {
          const float v =
              static_cast<float>(sums[m * N + o]) * (a.row_scales[m] * scb[o]) * kInverseSquare127;
          out[m * N + o] = bias != nullptr ? v + bias[o] : v;
        }
    });
    if (x.scalar_type() != at::kFloat) y = y.to(x.scalar_type());
    if (a.outlier_columns.defined()) {
      const at::ScalarType dtype = y.scalar_type();
      const at::Tensor w_outliers = (codes_.index_select(1, a.outlier_columns).to(at::kFloat) *
                                     scb_.unsqueeze(1) * kInverse127)
                                        .to(dtype);
      const at::Tensor x_outliers = x2.index_select(1, a.outlier_columns);
      if (dtype == at::kHalf) {
        // LibTorch 1.13 has no float16 matrix product on the CPU: float32 sums, rounded once, as
        // a GPU's float16 GEMM with float32 accumulation gives them.
        y = y.to(at::kFloat).addmm_(x_outliers.to(at::kFloat), w_outliers.to(at::kFloat).t());
        y = y.to(at::kHalf);
      } else {
        y.addmm_(x_outliers, w_outliers.t());
      }
    }
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = N;
    return y.view(shape);
  }

  at::Tensor dequantize(DType dtype) const override {
    return (codes_.to(at::kFloat) * scb_.unsqueeze(1) * kInverse127).to(to_scalar_type(dtype));
  }

 private:
  // Int8Params._quantize: the weight in fp16, row absmax SCB, codes round(W * 127 / SCB).
  void quantize(const at::Tensor& value) {
    const std::vector<int64_t> expected{args_.shape.out_features, args_.shape.in_features};
    if (value.sizes().vec() != expected)
      fail("weight", "shape " + shape_string(value.sizes().vec()) + " does not match the layer's " +
                         shape_string(expected));
    if (!at::isfinite(value).all().item<bool>())
      throw KernelError("layer '" + args_.layer +
                        "' has NaN or infinite weights; fix the checkpoint, or keep the layer in "
                        "full precision with llm_int8_skip_modules");
    const at::Tensor w = value.to(at::kHalf).to(at::kFloat).contiguous();
    const int64_t rows = expected[0], K = expected[1];
    codes_ = empty_for_weights({rows, K}, at::kChar);  // streamed by every matmul: huge pages
    scb_ = at::empty({rows}, at::TensorOptions().dtype(at::kFloat));
    const float* src = w.data_ptr<float>();
    int8_t* codes = codes_.data_ptr<int8_t>();
    float* scb = scb_.data_ptr<float>();
    at::parallel_for(0, rows, 16, [&](int64_t first, int64_t last) {
      kernels_.quantize_int8_rows(src, K, first, last, codes, scb);
    });
  }

  float threshold_;
  const CpuKernels& kernels_;
  at::Tensor codes_;
  at::Tensor row_sums_;  // sum_k codes_[o, k], int32: the int8_matmul's row_sums
  at::Tensor scb_;
  at::Tensor bias_f32_;  // the bias in float32, as the output adds it
};

}  // namespace

std::unique_ptr<LinearKernel> make_eight_bit_kernel(const LinearKernelArgs& args) {
  if (args.config == nullptr)
    throw KernelError("the bnb int8 kernel of '" + args.layer + "' needs the method's config");
  return std::make_unique<EightBitKernel>(args);
}

}  // namespace qplug::bnb
