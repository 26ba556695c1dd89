#include "packing.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>

#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/tensor_memory.hpp>

namespace qplug::packing {

namespace {

// ---- argument checks ----------------------------------------------------------------------------

[[noreturn]] void fail(const char* fn, const std::string& message) {
  throw KernelError(std::string(fn) + ": " + message);
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d)
    s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

// A defined CPU tensor of `dtype` with `dim` dimensions, made contiguous.
at::Tensor checked(const at::Tensor& t, at::ScalarType dtype, int64_t dim, const char* fn,
                   const char* name) {
  if (!t.defined()) fail(fn, std::string(name) + " is an undefined tensor");
  if (!t.device().is_cpu()) fail(fn, std::string(name) + " must be on the CPU");
  if (t.scalar_type() != dtype) {
    fail(fn, std::string(name) + " must be " + c10::toString(dtype) + ", got " +
                 c10::toString(t.scalar_type()));
  }
  if (t.dim() != dim) {
    fail(fn, std::string(name) + " must have " + std::to_string(dim) + " dimensions, got shape " +
                 shape_str(t));
  }
  return t.contiguous();
}

// Like checked(), for the scales, which may be any floating dtype (the layer dtype).
at::Tensor checked_floating(const at::Tensor& t, int64_t dim, const char* fn, const char* name) {
  if (!t.defined()) fail(fn, std::string(name) + " is an undefined tensor");
  if (!at::isFloatingType(t.scalar_type())) {
    fail(fn,
         std::string(name) + " must be a floating tensor, got " + c10::toString(t.scalar_type()));
  }
  return checked(t, t.scalar_type(), dim, fn, name);
}

void check_size(const at::Tensor& t, int64_t d, int64_t expected, const char* fn,
                const char* name) {
  if (t.size(d) != expected) {
    fail(fn, std::string(name) + " has shape " + shape_str(t) + ", but dimension " +
                 std::to_string(d) + " should be " + std::to_string(expected));
  }
}

bool supported_gptq_bits(int bits) {
  return bits == 2 || bits == 3 || bits == 4 || bits == 8;
}

void check_gptq_bits(int bits, const char* fn) {
  if (!supported_gptq_bits(bits)) {
    fail(fn, "bits " + std::to_string(bits) + " is not supported (GPTQ packs 2, 3, 4 or 8 bits)");
  }
}

// Why `count` values of one dimension cannot be packed into whole int32 words, or nullopt.
std::optional<std::string> count_reason(const char* name, int64_t count, int bits) {
  if (count <= 0) return std::string(name) + " " + std::to_string(count) + " must be positive";
  if (bits == 3) {
    if (count % 32 == 0) return std::nullopt;
    return std::string(name) + " " + std::to_string(count) +
           " is not a multiple of 32 (3-bit packing needs in_features and out_features to be "
           "multiples of 32)";
  }
  const int per_word = 32 / bits;
  if (count % per_word == 0) return std::nullopt;
  return std::string(name) + " " + std::to_string(count) + " is not a multiple of " +
         std::to_string(per_word) + " (32 / " + std::to_string(bits) + " bits)";
}

void check_count(const char* name, int64_t count, int bits, const char* fn) {
  if (auto reason = count_reason(name, count, bits)) fail(fn, *reason);
}

int64_t words_for(int64_t count, int bits) {
  return count * bits / 32;
}

void check_codes(uint32_t seen, int bits, const char* fn, const char* name) {
  const uint32_t maxq = (1u << bits) - 1;
  if (seen > maxq) {
    fail(fn, std::string(name) + " holds codes above " + std::to_string(maxq) + ", the largest " +
                 std::to_string(bits) + "-bit value");
  }
}

// ---- the word packers ---------------------------------------------------------------------------
//
// Every layout in this file is "each row of a uint8 matrix, split into consecutive runs of 32/bits
// values, each run one int32 word", differing only in which matrix (the codes or their transpose)
// and in which value goes to which field. `order[i]` is the value of the run stored in field i.

constexpr std::array<uint8_t, 16> kNaturalOrder = {0, 1, 2,  3,  4,  5,  6,  7,
                                                   8, 9, 10, 11, 12, 13, 14, 15};
// AWQ GEMM: field i of a word holds output column 8c + kAwqOrder[i] (FORMATS D.4).
constexpr std::array<uint8_t, 16> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};

// Rows per parallel task, so that a task has enough work to pay for itself.
int64_t grain_rows(int64_t cols) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(cols, 1));
}

template <int Bits>
uint32_t pack_row(const uint8_t* v, int64_t words, const uint8_t* order, uint32_t* out) {
  constexpr int kPerWord = 32 / Bits;
  uint32_t seen = 0;
  for (int64_t w = 0; w < words; ++w, v += kPerWord) {
    uint32_t word = 0;
    for (int i = 0; i < kPerWord; ++i) {
      const uint32_t x = v[order[i]];
      seen |= x;
      word |= x << (Bits * i);
    }
    out[w] = word;
  }
  return seen;
}

// 3 bits: each run of 32 values is one 96-bit little-endian stream over 3 words, value k at bits
// 3k..3k+2, so values 10 and 21 straddle two words.
uint32_t pack_row3(const uint8_t* v, int64_t words, uint32_t* out) {
  uint32_t seen = 0;
  for (int64_t w = 0; w < words; w += 3, v += 32) {
    unsigned __int128 stream = 0;
    for (int k = 0; k < 32; ++k) {
      seen |= v[k];
      stream |= static_cast<unsigned __int128>(v[k]) << (3 * k);
    }
    out[w] = static_cast<uint32_t>(stream);
    out[w + 1] = static_cast<uint32_t>(stream >> 32);
    out[w + 2] = static_cast<uint32_t>(stream >> 64);
  }
  return seen;
}

template <int Bits>
void unpack_row(const uint32_t* in, int64_t words, const uint8_t* order, uint8_t* v) {
  constexpr int kPerWord = 32 / Bits;
  constexpr uint32_t kMask = (1u << Bits) - 1;
  for (int64_t w = 0; w < words; ++w, v += kPerWord) {
    const uint32_t word = in[w];
    for (int i = 0; i < kPerWord; ++i)
      v[order[i]] = (word >> (Bits * i)) & kMask;
  }
}

void unpack_row3(const uint32_t* in, int64_t words, uint8_t* v) {
  for (int64_t w = 0; w < words; w += 3, v += 32) {
    const unsigned __int128 stream = static_cast<unsigned __int128>(in[w]) |
                                     static_cast<unsigned __int128>(in[w + 1]) << 32 |
                                     static_cast<unsigned __int128>(in[w + 2]) << 64;
    for (int k = 0; k < 32; ++k)
      v[k] = static_cast<uint8_t>(stream >> (3 * k)) & 7;
  }
}

uint32_t pack_row_bits(const uint8_t* v, int64_t words, int bits, const uint8_t* order,
                       uint32_t* out) {
  switch (bits) {
    case 2:
      return pack_row<2>(v, words, order, out);
    case 3:
      return pack_row3(v, words, out);
    case 4:
      return pack_row<4>(v, words, order, out);
    default:
      return pack_row<8>(v, words, order, out);
  }
}

void unpack_row_bits(const uint32_t* in, int64_t words, int bits, const uint8_t* order,
                     uint8_t* v) {
  switch (bits) {
    case 2:
      return unpack_row<2>(in, words, order, v);
    case 3:
      return unpack_row3(in, words, v);
    case 4:
      return unpack_row<4>(in, words, order, v);
    default:
      return unpack_row<8>(in, words, order, v);
  }
}

// uint8 [rows, cols] -> int32 [rows, cols*bits/32]. Callers have checked that cols packs into
// whole words. Throws when a value does not fit in `bits` bits: AutoGPTQ would silently OR it
// into the neighbouring fields.
at::Tensor pack_matrix(const at::Tensor& values, int bits, const uint8_t* order, const char* fn,
                       const char* name) {
  const int64_t rows = values.size(0), cols = values.size(1), words = words_for(cols, bits);
  at::Tensor packed = at::empty({rows, words}, at::kInt);
  const uint8_t* src = values.data_ptr<uint8_t>();
  auto* dst = reinterpret_cast<uint32_t*>(packed.data_ptr<int32_t>());
  std::atomic<uint32_t> seen{0};
  at::parallel_for(0, rows, grain_rows(cols), [&](int64_t begin, int64_t end) {
    uint32_t local = 0;
    for (int64_t r = begin; r < end; ++r) {
      local |= pack_row_bits(src + r * cols, words, bits, order, dst + r * words);
    }
    seen.fetch_or(local, std::memory_order_relaxed);
  });
  check_codes(seen.load(), bits, fn, name);
  return packed;
}

// int32 [rows, words] -> uint8 [rows, words*32/bits].
at::Tensor unpack_matrix(const at::Tensor& packed, int bits, const uint8_t* order) {
  const int64_t rows = packed.size(0), words = packed.size(1), cols = words * 32 / bits;
  at::Tensor values = at::empty({rows, cols}, at::kByte);
  const auto* src = reinterpret_cast<const uint32_t*>(packed.data_ptr<int32_t>());
  uint8_t* dst = values.data_ptr<uint8_t>();
  at::parallel_for(0, rows, grain_rows(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      unpack_row_bits(src + r * words, words, bits, order, dst + r * cols);
    }
  });
  return values;
}

// Transposes the 8x8 byte matrix held in x (byte k of x[r] is element (r, k)) in place, by
// swapping 4x4, then 2x2, then 1x1 blocks across the diagonal.
void transpose8x8(uint64_t x[8]) {
  const auto swap = [&](int a, int b, int shift, uint64_t mask) {
    const uint64_t t = ((x[a] >> shift) ^ x[b]) & mask;
    x[a] ^= t << shift;
    x[b] ^= t;
  };
  for (int r = 0; r < 4; ++r)
    swap(r, r + 4, 32, 0x00000000FFFFFFFFull);
  for (int r : {0, 1, 4, 5})
    swap(r, r + 2, 16, 0x0000FFFF0000FFFFull);
  for (int r : {0, 2, 4, 6})
    swap(r, r + 1, 8, 0x00FF00FF00FF00FFull);
}

// Transposes src [rows, cols] into dst [cols, rows], tile by tile, so that both sides stay in
// cache. Bytes go 8x8 at a time through registers: moving single bytes with a 4096-byte read
// stride is several times slower (every row of a tile maps to the same L1 set).
template <typename T>
void transpose_tiles(const T* src, T* dst, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 64;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  at::parallel_for(0, row_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r0 = begin * kTile; r0 < std::min(rows, end * kTile); r0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile);
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        if constexpr (sizeof(T) == 1) {
          if (r1 - r0 == kTile && c1 - c0 == kTile) {
            for (int64_t r = r0; r < r1; r += 8) {
              for (int64_t c = c0; c < c1; c += 8) {
                uint64_t x[8];
                for (int i = 0; i < 8; ++i)
                  std::memcpy(&x[i], src + (r + i) * cols + c, 8);
                transpose8x8(x);
                for (int i = 0; i < 8; ++i)
                  std::memcpy(dst + (c + i) * rows + r, &x[i], 8);
              }
            }
            continue;
          }
        }
        for (int64_t c = c0; c < c1; ++c) {
          for (int64_t r = r0; r < r1; ++r)
            dst[c * rows + r] = src[r * cols + c];
        }
      }
    }
  });
}

// A contiguous transpose of a contiguous 2-D tensor, into `out` ([cols, rows], m's dtype).
template <typename T>
at::Tensor transposed(const at::Tensor& m, at::Tensor out) {
  transpose_tiles<T>(m.data_ptr<T>(), out.data_ptr<T>(), m.size(0), m.size(1));
  return out;
}

template <typename T>
at::Tensor transposed(const at::Tensor& m) {
  return transposed<T>(m, at::empty({m.size(1), m.size(0)}, m.options()));
}

// ---- dequantization -----------------------------------------------------------------------------

// float32 [out, in] = scale[o, g] * (q[o, j] - zero[o, g]) with g = group[j]. q uint8 [out, in],
// zeros int32 [out, G], scales float32 [out, G]. The product of a <= 9-bit integer and an fp16 or
// bf16 scale is exact in float32, so this matches the upstream dequantizers bit for bit.
at::Tensor dequantize_core(const at::Tensor& q, const at::Tensor& zeros, const at::Tensor& scales,
                           const std::vector<int64_t>& group) {
  const int64_t out = q.size(0), in = q.size(1), groups = zeros.size(1);
  at::Tensor w = at::empty({out, in}, at::kFloat);
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const int32_t* zp = zeros.data_ptr<int32_t>();
  const float* sp = scales.data_ptr<float>();
  float* wp = w.data_ptr<float>();
  at::parallel_for(0, out, grain_rows(in), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const int32_t* z = zp + o * groups;
      const float* s = sp + o * groups;
      for (int64_t j = 0; j < in; ++j) {
        const int64_t g = group[j];
        wp[o * in + j] = s[g] * static_cast<float>(static_cast<int32_t>(qp[o * in + j]) - z[g]);
      }
    }
  });
  return w;
}

// ---- AWQ helpers --------------------------------------------------------------------------------

constexpr int kAwqBits = 4;

int64_t resolved_group_size(int64_t in_features, int64_t group_size) {
  return group_size == -1 ? in_features : group_size;
}

void check_awq_out(int64_t out_features, const char* fn) {
  check_count("out_features", out_features, kAwqBits, fn);
}

void check_positive_group_size(int64_t group_size, const char* fn) {
  if (group_size <= 0) {
    fail(fn, "group_size " + std::to_string(group_size) +
                 " must be positive here (resolve -1 to in_features first)");
  }
}

}  // namespace

// ---- shape checks -------------------------------------------------------------------------------

std::optional<std::string> gptq_unpackable_reason(int64_t in_features, int64_t out_features,
                                                  int bits) {
  if (!supported_gptq_bits(bits)) {
    return "bits " + std::to_string(bits) + " is not supported (GPTQ packs 2, 3, 4 or 8 bits)";
  }
  if (auto reason = count_reason("in_features", in_features, bits)) return reason;
  return count_reason("out_features", out_features, bits);
}

std::optional<std::string> awq_unpackable_reason(int64_t in_features, int64_t out_features,
                                                 int64_t group_size) {
  if (group_size == 0 || group_size < -1) {
    return "group_size " + std::to_string(group_size) + " is not valid (a positive size or -1)";
  }
  if (in_features <= 0) return "in_features " + std::to_string(in_features) + " must be positive";
  const int64_t gs = resolved_group_size(in_features, group_size);
  if (in_features % gs != 0) {
    return "in_features " + std::to_string(in_features) + " is not a multiple of group_size " +
           std::to_string(gs);
  }
  return count_reason("out_features", out_features, kAwqBits);
}

// ---- GPTQ ---------------------------------------------------------------------------------------

at::Tensor pack_gptq_qweight(const at::Tensor& intweight, int bits) {
  constexpr const char* fn = "pack_gptq_qweight";
  const at::Tensor w = checked(intweight, at::kByte, 2, fn, "intweight");
  check_gptq_bits(bits, fn);
  if (auto reason = gptq_unpackable_reason(w.size(1), w.size(0), bits)) fail(fn, *reason);
  // Packing each output row along the input dim and transposing the (bits/8 times smaller) words
  // is cheaper than transposing the codes first. The int4 kernels stream the result on every
  // call, so it goes to weight memory (huge pages).
  const at::Tensor rows = pack_matrix(w, bits, kNaturalOrder.data(), fn, "intweight");
  return transposed<int32_t>(rows, empty_for_weights({rows.size(1), rows.size(0)}, at::kInt));
}

at::Tensor unpack_gptq_qweight(const at::Tensor& qweight, int bits, int64_t in_features) {
  constexpr const char* fn = "unpack_gptq_qweight";
  const at::Tensor q = checked(qweight, at::kInt, 2, fn, "qweight");
  check_gptq_bits(bits, fn);
  check_count("in_features", in_features, bits, fn);
  check_size(q, 0, words_for(in_features, bits), fn, "qweight");
  return unpack_matrix(transposed<int32_t>(q), bits, kNaturalOrder.data());
}

at::Tensor pack_gptq_qzeros(const at::Tensor& zeros, int bits, bool v1) {
  constexpr const char* fn = "pack_gptq_qzeros";
  at::Tensor z = checked(zeros, at::kByte, 2, fn, "zeros");
  check_gptq_bits(bits, fn);
  check_count("out_features", z.size(0), bits, fn);
  if (z.size(1) < 1) fail(fn, "zeros has shape " + shape_str(z) + ", with no groups");
  z = transposed<uint8_t>(z);  // [G, out]: qzeros packs along the output dim
  if (v1) {
    // Range-check the true zeros before the mask below hides an out-of-range one.
    check_codes(z.max().item<uint8_t>(), bits, fn, "zeros");
    const uint8_t mask = static_cast<uint8_t>((1u << bits) - 1);
    uint8_t* p = z.data_ptr<uint8_t>();
    for (int64_t i = 0; i < z.numel(); ++i)
      p[i] = static_cast<uint8_t>(p[i] - 1) & mask;
  }
  return pack_matrix(z, bits, kNaturalOrder.data(), fn, "zeros");
}

at::Tensor unpack_gptq_qzeros(const at::Tensor& qzeros, int bits, int64_t out_features, bool v1) {
  constexpr const char* fn = "unpack_gptq_qzeros";
  const at::Tensor q = checked(qzeros, at::kInt, 2, fn, "qzeros");
  check_gptq_bits(bits, fn);
  check_count("out_features", out_features, bits, fn);
  check_size(q, 1, words_for(out_features, bits), fn, "qzeros");
  at::Tensor z = unpack_matrix(q, bits, kNaturalOrder.data()).to(at::kInt);
  if (v1) z.add_(1);
  return transposed<int32_t>(z);
}

at::Tensor dequantize_gptq(const at::Tensor& qweight, const at::Tensor& qzeros,
                           const at::Tensor& scales, const at::Tensor& g_idx, int bits, bool v1) {
  constexpr const char* fn = "dequantize_gptq";
  if (!g_idx.defined() || (g_idx.scalar_type() != at::kInt && g_idx.scalar_type() != at::kLong)) {
    fail(fn, "g_idx must be an int32 or int64 tensor");
  }
  const at::Tensor gi = checked(g_idx, g_idx.scalar_type(), 1, fn, "g_idx").to(at::kLong);
  const at::Tensor q = unpack_gptq_qweight(qweight, bits, gi.size(0));
  const int64_t out = q.size(0);
  const at::Tensor z = unpack_gptq_qzeros(qzeros, bits, out, v1);
  const int64_t groups = z.size(1);
  const at::Tensor s = checked_floating(scales, 2, fn, "scales");
  check_size(s, 0, groups, fn, "scales");
  check_size(s, 1, out, fn, "scales");

  std::vector<int64_t> group(gi.data_ptr<int64_t>(), gi.data_ptr<int64_t>() + gi.numel());
  for (int64_t j = 0; j < static_cast<int64_t>(group.size()); ++j) {
    if (group[j] < 0 || group[j] >= groups) {
      fail(fn, "g_idx[" + std::to_string(j) + "] = " + std::to_string(group[j]) +
                   " is outside the " + std::to_string(groups) + " groups");
    }
  }
  return dequantize_core(q, z, transposed<float>(s.to(at::kFloat).contiguous()), group);
}

// ---- AWQ GEMM -----------------------------------------------------------------------------------

at::Tensor pack_awq_gemm(const at::Tensor& intweight) {
  constexpr const char* fn = "pack_awq_gemm";
  const at::Tensor w = checked(intweight, at::kByte, 2, fn, "intweight");
  check_awq_out(w.size(0), fn);
  if (w.size(1) < 1) fail(fn, "intweight has shape " + shape_str(w) + ", with no inputs");
  return pack_matrix(transposed<uint8_t>(w), kAwqBits, kAwqOrder.data(), fn, "intweight");
}

at::Tensor unpack_awq_gemm(const at::Tensor& qweight) {
  constexpr const char* fn = "unpack_awq_gemm";
  const at::Tensor q = checked(qweight, at::kInt, 2, fn, "qweight");
  return transposed<uint8_t>(unpack_matrix(q, kAwqBits, kAwqOrder.data()));
}

at::Tensor pack_awq_gemm_zeros(const at::Tensor& zeros) {
  constexpr const char* fn = "pack_awq_gemm_zeros";
  const at::Tensor z = checked(zeros, at::kByte, 2, fn, "zeros");
  check_awq_out(z.size(0), fn);
  if (z.size(1) < 1) fail(fn, "zeros has shape " + shape_str(z) + ", with no groups");
  return pack_matrix(transposed<uint8_t>(z), kAwqBits, kAwqOrder.data(), fn, "zeros");
}

at::Tensor unpack_awq_gemm_zeros(const at::Tensor& qzeros) {
  constexpr const char* fn = "unpack_awq_gemm_zeros";
  const at::Tensor q = checked(qzeros, at::kInt, 2, fn, "qzeros");
  return transposed<uint8_t>(unpack_matrix(q, kAwqBits, kAwqOrder.data()));
}

at::Tensor dequantize_awq_gemm(const at::Tensor& qweight, const at::Tensor& qzeros,
                               const at::Tensor& scales, int64_t group_size) {
  constexpr const char* fn = "dequantize_awq_gemm";
  const at::Tensor q = unpack_awq_gemm(qweight);
  const int64_t out = q.size(0), in = q.size(1);
  if (auto reason = awq_unpackable_reason(in, out, group_size)) fail(fn, *reason);
  const int64_t gs = resolved_group_size(in, group_size), groups = in / gs;
  const at::Tensor qz = checked(qzeros, at::kInt, 2, fn, "qzeros");
  check_size(qz, 0, groups, fn, "qzeros");
  check_size(qz, 1, out / 8, fn, "qzeros");
  const at::Tensor s = checked_floating(scales, 2, fn, "scales");
  check_size(s, 0, groups, fn, "scales");
  check_size(s, 1, out, fn, "scales");

  std::vector<int64_t> group(in);
  for (int64_t j = 0; j < in; ++j)
    group[j] = j / gs;
  return dequantize_core(q, unpack_awq_gemm_zeros(qz).to(at::kInt),
                         transposed<float>(s.to(at::kFloat).contiguous()), group);
}

// ---- AWQ GEMV -----------------------------------------------------------------------------------

int64_t awq_gemv_zeros_width(int64_t num_groups, int64_t group_size) {
  constexpr const char* fn = "awq_gemv_zeros_width";
  check_positive_group_size(group_size, fn);
  if (num_groups < 1) fail(fn, "num_groups " + std::to_string(num_groups) + " must be positive");
  int64_t multiple = 0;
  if (group_size >= 128) {
    multiple = 1;
  } else if (group_size == 64) {
    multiple = 2;
  } else if (group_size == 32) {
    multiple = 4;
  } else {
    fail(fn, "AutoAWQ's GEMV layout has no zeros width for group_size " +
                 std::to_string(group_size) + " (it supports 32, 64 and >= 128)");
  }
  const int64_t base = (num_groups + 7) / 8;
  return (base + multiple - 1) / multiple * multiple;
}

at::Tensor pack_awq_gemv(const at::Tensor& intweight) {
  constexpr const char* fn = "pack_awq_gemv";
  const at::Tensor w = checked(intweight, at::kByte, 2, fn, "intweight");
  check_count("in_features", w.size(1), kAwqBits, fn);
  if (w.size(0) < 1) fail(fn, "intweight has shape " + shape_str(w) + ", with no outputs");
  return pack_matrix(w, kAwqBits, kNaturalOrder.data(), fn, "intweight");
}

at::Tensor unpack_awq_gemv(const at::Tensor& qweight) {
  constexpr const char* fn = "unpack_awq_gemv";
  const at::Tensor q = checked(qweight, at::kInt, 2, fn, "qweight");
  return unpack_matrix(q, kAwqBits, kNaturalOrder.data());
}

at::Tensor pack_awq_gemv_zeros(const at::Tensor& zeros, int64_t group_size) {
  constexpr const char* fn = "pack_awq_gemv_zeros";
  const at::Tensor z = checked(zeros, at::kByte, 2, fn, "zeros");
  const int64_t width = awq_gemv_zeros_width(z.size(1), group_size);
  // AutoAWQ skips the fields past the last group, leaving them 0.
  at::Tensor padded = at::zeros({z.size(0), width * 8}, at::kByte);
  padded.narrow(1, 0, z.size(1)).copy_(z);
  return pack_matrix(padded, kAwqBits, kNaturalOrder.data(), fn, "zeros");
}

at::Tensor unpack_awq_gemv_zeros(const at::Tensor& qzeros, int64_t num_groups) {
  constexpr const char* fn = "unpack_awq_gemv_zeros";
  const at::Tensor q = checked(qzeros, at::kInt, 2, fn, "qzeros");
  if (num_groups < 1 || num_groups > q.size(1) * 8) {
    fail(fn, "num_groups " + std::to_string(num_groups) + " does not fit qzeros of shape " +
                 shape_str(q));
  }
  return unpack_matrix(q, kAwqBits, kNaturalOrder.data()).narrow(1, 0, num_groups).contiguous();
}

at::Tensor awq_gemv_scales(const at::Tensor& scales, int64_t group_size) {
  constexpr const char* fn = "awq_gemv_scales";
  const at::Tensor s = checked_floating(scales, 2, fn, "scales");
  const int64_t width = awq_gemv_zeros_width(s.size(1), group_size);
  at::Tensor padded = at::zeros({s.size(0), width * 8}, s.options());
  padded.narrow(1, 0, s.size(1)).copy_(s);
  return padded;
}

at::Tensor unpack_awq_gemv_scales(const at::Tensor& scales, int64_t num_groups) {
  constexpr const char* fn = "unpack_awq_gemv_scales";
  const at::Tensor s = checked_floating(scales, 2, fn, "scales");
  if (num_groups < 1 || num_groups > s.size(1)) {
    fail(fn, "num_groups " + std::to_string(num_groups) + " does not fit scales of shape " +
                 shape_str(s));
  }
  return s.narrow(1, 0, num_groups).contiguous();
}

// ---- AWQ -> GPTQ v1 -----------------------------------------------------------------------------

GptqPacked awq_to_gptq_v1(const at::Tensor& awq_qweight, const at::Tensor& awq_qzeros) {
  const at::Tensor w = unpack_awq_gemm(awq_qweight);
  const at::Tensor z = unpack_awq_gemm_zeros(awq_qzeros);
  if (z.size(0) != w.size(0)) {
    fail("awq_to_gptq_v1", "qzeros has shape " + shape_str(awq_qzeros) + ", but qweight has " +
                               std::to_string(w.size(0) / 8) + " words per input row");
  }
  return {pack_gptq_qweight(w, kAwqBits), pack_gptq_qzeros(z, kAwqBits, /*v1=*/true)};
}

}  // namespace qplug::packing
