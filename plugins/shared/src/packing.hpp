// Packing and unpacking of the integer layouts GPTQ and AWQ checkpoints store (FORMATS.md C.3 and
// D.4), shared by the built-in gptq and awq plugins.
//
// Conventions: "intweight" is the integer code matrix uint8 [out, in] (PyTorch weight order) and
// "zeros" the true zero points uint8 [out, G]. Every function works on CPU tensors, makes its
// inputs contiguous, checks dtypes, shapes and code ranges, and throws KernelError naming the
// function and the offending value otherwise. The packers write exactly the bytes the upstream
// Python packers write, so checkpoints we save are indistinguishable from theirs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <ATen/ATen.h>

namespace qplug::packing {

// ---- shape checks ---------------------------------------------------------------------------

// nullopt when a Linear of this shape can be packed at `bits` (2, 3, 4 or 8), else a sentence
// saying why not, e.g. "in_features 172 is not a multiple of 8 (32 / 4 bits)".
std::optional<std::string> gptq_unpackable_reason(int64_t in_features, int64_t out_features,
                                                  int bits);
// The same for AWQ (4-bit only): in_features % group_size == 0 and out_features % 8 == 0.
// group_size -1 means one group over the whole row, as in AutoAWQ.
std::optional<std::string> awq_unpackable_reason(int64_t in_features, int64_t out_features,
                                                 int64_t group_size);

// ---- GPTQ (AutoGPTQ QuantLinear.pack) ---------------------------------------------------------

// uint8 [out, in] codes in [0, 2^bits - 1] -> int32 [in*bits/32, out], packed along the input dim.
at::Tensor pack_gptq_qweight(const at::Tensor& intweight, int bits);
// int32 [in*bits/32, out] -> uint8 [out, in].
at::Tensor unpack_gptq_qweight(const at::Tensor& qweight, int bits, int64_t in_features);

// True zeros uint8 [out, G] -> int32 [G, out*bits/32], packed along the output dim. v1
// (checkpoint_format "gptq") stores (zero - 1) masked to `bits` bits, so a zero of 0 becomes an
// all-ones field without spilling into its neighbours; v2 stores the zero as it is.
at::Tensor pack_gptq_qzeros(const at::Tensor& zeros, int bits, bool v1);
// int32 [G, out*bits/32] -> int32 [out, G]. v1 adds 1 to every field without wrapping, as the
// upstream kernels do, so an all-ones field reads back as 2^bits.
at::Tensor unpack_gptq_qzeros(const at::Tensor& qzeros, int bits, int64_t out_features, bool v1);

// float32 [out, in] = scales[g_idx[j], o] * (q[o, j] - zero[o, g_idx[j]]). qweight/qzeros as
// stored, scales [G, out] of any floating dtype, g_idx int32 or int64 [in].
at::Tensor dequantize_gptq(const at::Tensor& qweight, const at::Tensor& qzeros,
                           const at::Tensor& scales, const at::Tensor& g_idx, int bits, bool v1);

// ---- AWQ GEMM (WQLinear_GEMM.from_linear; 4-bit, AWQ_ORDER interleave) -------------------------

// uint8 [out, in] -> int32 [in, out/8].
at::Tensor pack_awq_gemm(const at::Tensor& intweight);
// int32 [in, out/8] -> uint8 [out, in].
at::Tensor unpack_awq_gemm(const at::Tensor& qweight);
// uint8 [out, G] -> int32 [G, out/8]; the zero is stored as it is.
at::Tensor pack_awq_gemm_zeros(const at::Tensor& zeros);
// int32 [G, out/8] -> uint8 [out, G].
at::Tensor unpack_awq_gemm_zeros(const at::Tensor& qzeros);

// float32 [out, in] = scales[j / group_size, o] * (q[o, j] - zero[o, j / group_size]).
at::Tensor dequantize_awq_gemm(const at::Tensor& qweight, const at::Tensor& qzeros,
                               const at::Tensor& scales, int64_t group_size);

// ---- AWQ GEMV (WQLinear_GEMV.from_linear; 4-bit, natural order) -------------------------------

// The number of int32 zero words per output row: ceil(G/8) rounded up to a multiple of 1, 2 or 4
// for group_size >= 128, 64 or 32 (AutoAWQ calculate_zeros_width). Throws KernelError for other
// group sizes, which AutoAWQ's GEMV cannot store either.
int64_t awq_gemv_zeros_width(int64_t num_groups, int64_t group_size);

// uint8 [out, in] -> int32 [out, in/8].
at::Tensor pack_awq_gemv(const at::Tensor& intweight);
// int32 [out, in/8] -> uint8 [out, in].
at::Tensor unpack_awq_gemv(const at::Tensor& qweight);
// uint8 [out, G] -> int32 [out, Zw], the slots past G left 0.
at::Tensor pack_awq_gemv_zeros(const at::Tensor& zeros, int64_t group_size);
// int32 [out, Zw] -> uint8 [out, G].
at::Tensor unpack_awq_gemv_zeros(const at::Tensor& qzeros, int64_t num_groups);
// Floating [out, G] -> the same dtype [out, Zw*8], the slots past G left 0.
at::Tensor awq_gemv_scales(const at::Tensor& scales, int64_t group_size);
// Floating [out, Zw*8] -> [out, G] (drops the padding).
at::Tensor unpack_awq_gemv_scales(const at::Tensor& scales, int64_t num_groups);

// ---- AWQ -> GPTQ v1 (AutoAWQ unpack_reorder_pack) ----------------------------------------------

struct GptqPacked {
  at::Tensor qweight;  // int32 [in/8, out]
  at::Tensor qzeros;   // int32 [G, out/8], v1 (zero - 1)
};
// The GEMM qweight [in, out/8] and qzeros [G, out/8] repacked as 4-bit GPTQ v1; byte-identical to
// pack_gptq_qweight / pack_gptq_qzeros(v1) of the same integers. (AutoAWQ's own repack lets a
// zero of 0 corrupt its neighbours; this one does not.)
GptqPacked awq_to_gptq_v1(const at::Tensor& awq_qweight, const at::Tensor& awq_qzeros);

}  // namespace qplug::packing
