// polyfuse runtime helpers included by every generated host kernel file.
// Scalar helpers that generated expressions call; each matches ONNX semantics.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

// A thread's scratch tile of at least n floats (v only grows), 64-byte aligned: the GEMM's
// vector loads and stores into it then never straddle two cache lines. Attention's score tile
// (64 x 128) from a plain std::vector was 16 bytes off a line: MobileBERT's softmax over it
// 12% slower (9.2 against 8.0 us per 64 rows, Zen 4), the pass normalising it 8x slower.
static inline float* pf_scratch(std::vector<float>& v, size_t n) {
  v.resize(n + 15);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// max/min over the operands' common type (ints stay ints, floats stay floats). A NaN operand
// gives NaN, as ONNX Max/Min/Relu/Clip do in onnxruntime (a plain a > b ? a : b drops it when
// it is the first operand).
template <class A, class B>
static inline std::common_type_t<A, B> pf_max(A a, B b) {
  using T = std::common_type_t<A, B>;
  const T x = (T)a, y = (T)b;
  if constexpr (std::is_floating_point_v<T>) return (x > y || x != x) ? x : y;
  else return x > y ? x : y;
}
template <class A, class B>
static inline std::common_type_t<A, B> pf_min(A a, B b) {
  using T = std::common_type_t<A, B>;
  const T x = (T)a, y = (T)b;
  if constexpr (std::is_floating_point_v<T>) return (x < y || x != x) ? x : y;
  else return x < y ? x : y;
}

// C's pow(a, b), whatever the compiler makes of std::pow: gcc 12 vectorises pow(x, 0.5) as
// sqrt(x) at -O3 -fno-math-errno, which gives NaN for x = -inf (pow: +inf) and -0 for x = -0
// (pow: +0). So the power is taken of |a|, where that rewrite is exact, and the sign and the NaN
// of a negative base are put back by C's rules: an odd integer exponent keeps the sign, any
// other integer (or infinite) exponent drops it, and a non-integer one gives NaN for a negative
// finite nonzero base. Float when both operands are float, else double.
template <class A, class B>
static inline auto pf_pow(A a, B b) {
  using T = std::conditional_t<std::is_same_v<A, float> && std::is_same_v<B, float>, float, double>;
  const T x = (T)a, y = (T)b;
  const T r = std::pow(std::fabs(x), y);
  const bool whole = std::floor(y) == y;  // true for +-inf too, which C treats as even
  const bool odd = whole && std::fabs(y) < T(1 << 24) && std::fmod(y, T(2)) != 0;
  if (!std::signbit(x)) return r;
  if (odd) return -r;
  return (whole || x == T(0) || std::isinf(x)) ? r : std::numeric_limits<T>::quiet_NaN();
}

// NaN and finiteness tests for any floating type, _Float16 included (std::isnan has no overload
// for it); integers are never NaN and always finite.
template <class T>
static inline bool pf_isnan(T x) {
  return x != x;
}
template <class T>
static inline bool pf_isfinite(T x) {
  if constexpr (std::is_integral_v<T>) return true;
  else return x - x == x - x;  // inf - inf and NaN - NaN are NaN
}

// c ? a : b with both values already computed (their loads are in range everywhere), as a
// bitwise blend: (a & m) | (b & ~m) with m all ones where c holds. Loads inside a ?: branch
// become masked loads when gcc vectorises, and gcc 12.2 miscompiles some of those
// (tests/compiler_bugs/); codegen/printer.py prints this instead. A plain `c ? a : b` here is not
// enough: gcc sinks the load of `a` into the branch that uses it, and then vectorises it as a
// masked load all the same (gcc12_select_sunk_load.cpp: three masked loads under one mask).
template <int N> struct pf_bits_of;
template <> struct pf_bits_of<1> { using type = uint8_t; };
template <> struct pf_bits_of<2> { using type = uint16_t; };
template <> struct pf_bits_of<4> { using type = uint32_t; };
template <> struct pf_bits_of<8> { using type = uint64_t; };
template <class C, class A, class B>
static inline std::common_type_t<A, B> pf_select(C c, A a, B b) {
  using T = std::common_type_t<A, B>;
  using U = typename pf_bits_of<sizeof(T)>::type;
  const T x = (T)a, y = (T)b;
  U ux, uy;
  std::memcpy(&ux, &x, sizeof(T));
  std::memcpy(&uy, &y, sizeof(T));
  const U m = U(0) - U(bool(c));
  const U r = U((ux & m) | (uy & U(~m)));
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

// a && b and a || b with both operands computed, for the same reason: gcc 12.2 vectorises the
// short-circuit forms over uint8_t (bool) loads with masked loads, wrongly on AVX-512BW hosts.
template <class A, class B>
static inline bool pf_and(A a, B b) { return bool(a) & bool(b); }
template <class A, class B>
static inline bool pf_or(A a, B b) { return bool(a) | bool(b); }

// a * b + c rounded once where the CPU has FMA (the generated code is built with
// -ffp-contract=off, so the compiler never fuses on its own), else twice.
static inline float pf_fma(float a, float b, float c) {
#if defined(__FMA__) || defined(__aarch64__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// c[0] * x^(N-1) + c[1] * x^(N-2) + ... + c[N-1] by Horner's rule (fully unrolled, vectorisable).
template <int N>
static inline float pf_poly(float x, const float (&c)[N]) {
  float p = c[0];
#pragma GCC unroll 16
  for (int i = 1; i < N; ++i) p = pf_fma(p, x, c[i]);
  return p;
}

// exp for float32, branch-free so loops over it vectorize (std::expf calls do not).
// x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by a degree-6 polynomial:
// pf_exp_reduced returns exp(r) and n for a finite x in [-104, 88.8].
static inline float pf_exp_reduced(float x, float& n) {
  n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  const float p = pf_poly(r, {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                              1.6666665459e-1f, 5.0000001201e-1f});
  return p * r * r + r + 1.0f;
}
// 2^n for an integral n in [-126, 127], as float bits.
static inline float pf_exp2i(float n) {
  const uint32_t b = uint32_t((int32_t)n + 127) << 23;
  float s;
  std::memcpy(&s, &b, sizeof s);
  return s;
}

// exp(x): 2^n as 2^(n/2) * 2^(n - n/2) so both factors stay normal floats. Accuracy (checked
// against numpy in tests/test_vecmath.py): relative error <= 2e-7 on the normal range;
// subnormal results below exp(-87.3); 0 below -104; +inf above 88.72; NaN stays NaN.
static inline float pf_exp(float x) {
  // Clamp with NaN going to -104 (one max and one min instruction): NaN must not reach the
  // float -> int conversion below, which is undefined behaviour for it (UBSan found it).
  const float lo = x > -104.0f ? x : -104.0f;
  const float xc = lo < 88.8f ? lo : 88.8f;
  float n;
  const float y = pf_exp_reduced(xc, n);
  const float n1 = std::floor(n * 0.5f);
  return x != x ? x : y * pf_exp2i(n1) * pf_exp2i(n - n1);
}

// exp(x) for x <= 0 (or NaN): a softmax's x - max(x). The same value as pf_exp where the result
// is a normal float (bit for bit: a power of two scales it exactly either way), 0 where it would
// be below 1.2e-38 (x < -87.33), NaN for NaN; one scale factor and no overflow clamp, 40% fewer
// instructions than pf_exp (BERT-base's softmax, 24 x 128 x 128 per layer: 1.05 -> 0.45 ms of
// ~104). Arguments above 88 would overflow the scale: forms/reduction.py only passes x - max(x).
static inline float pf_exp_nonpos(float x) {
  const float xc = x > -87.33f ? x : -87.33f;  // NaN -> -87.33, so the conversion is defined
  float n;
  const float y = pf_exp_reduced(xc, n);
  const float e = x < -87.33f ? 0.0f : y * pf_exp2i(n);
  return x != x ? x : e;
}
static inline double pf_exp(double x) { return std::exp(x); }
static inline double pf_exp_nonpos(double x) { return std::exp(x); }

// erf and tanh for float32, branch-free (both pieces are computed and one is selected) so
// loops over them vectorise; std::erf / std::tanh calls do not. Coefficients are least-squares
// fits made for polyfuse. Accuracy (tests/test_vecmath.py, against float64): absolute error
// <= 1.5e-7 everywhere (2.5 ulp below 1) and relative <= 3e-7 for |x| <= 1 (normal results); +-inf
// give +-1, NaN stays NaN.
static inline float pf_erf(float x) {
  const float a = std::fabs(x), z = x * x;
  // |x| <= 1: erf(x) = x * P(x^2)
  const float p = pf_poly(z, {-5.667994846589863e-4f, 4.927420057356358e-3f, -2.6720894500613213e-2f,
                              1.128057911992073e-1f, -3.7612390518188477e-1f, 1.1283791065216064f});
  // 1 < |x| < 4: erf = R((|x| - 2.5) / 1.5), a degree-16 Chebyshev fit in power form (float32
  // evaluation error <= 1.1e-7; no exp or division, half the cost of 1 - exp(-x^2) * Q(...));
  // |x| >= 4: erf is 1 in float32.
  const float r = pf_poly((a - 2.5f) * 0.6666667f,
                          {9.352101187687367e-06f, -0.00015805794100742787f, 0.00022282266581896693f,
                           0.0006889319629408419f, -0.0019799580331891775f, 0.0006496183341369033f,
                           0.0046268031001091f, -0.009727190248668194f, 0.006654083263128996f,
                           0.009298029355704784f, -0.03187171369791031f, 0.046448975801467896f,
                           -0.043651215732097626f, 0.02818186767399311f, -0.01225283369421959f,
                           0.0032674202229827642f, 0.9995930194854736f});
  const float big = a >= 4.0f ? 1.0f : r;  // NaN: r (NaN); r past 4 is never used
  return a <= 1.0f ? x * p : std::copysign(big, x);
}
static inline double pf_erf(double x) { return std::erf(x); }

static inline float pf_tanh(float x) {
  const float a = std::fabs(x), z = x * x;
  // |x| < 0.625: tanh(x) = x * P(x^2)
  const float p = pf_poly(z, {-5.697522312402725e-3f, 2.0630307495594025e-2f, -5.373586341738701e-2f,
                              1.3331365585327148e-1f, -3.3333274722099304e-1f, 1.0f});
  const float ac = a > 9.0f ? 9.0f : a;  // tanh(9) is 1 in float32
  const float big = 1.0f - 2.0f / (pf_exp(2.0f * ac) + 1.0f);
  return a < 0.625f ? x * p : std::copysign(big, x);
}
static inline double pf_tanh(double x) { return std::tanh(x); }

static inline float pf_sigmoid(float x) { return 1.0f / (1.0f + pf_exp(-x)); }
static inline double pf_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Integer division truncating toward zero (ONNX Div on integers, as onnxruntime does);
// division by zero gives 0 instead of trapping.
template <class A, class B>
static inline std::common_type_t<A, B> pf_idiv(A a, B b) {
  using T = std::common_type_t<A, B>;
  return (T)b == 0 ? T(0) : T((T)a / (T)b);
}

// ONNX Mod with fmod=1: the remainder has the dividend's sign (C's % on integers, fmod on
// floats, exact in any precision: _Float16 goes through float). An integer remainder by 0 gives
// 0 and INT_MIN % -1 gives 0, instead of trapping.
template <class A, class B>
static inline std::common_type_t<A, B> pf_trunc_mod(A a, B b) {
  using T = std::common_type_t<A, B>;
  if constexpr (std::is_integral_v<T>) {
    return ((T)b == 0 || (std::is_signed_v<T> && (T)b == T(-1))) ? T(0) : T((T)a % (T)b);
  } else {
    using W = std::conditional_t<std::is_same_v<T, double>, double, float>;
    return T(std::fmod((W)a, (W)b));
  }
}

// ONNX Mod with fmod=0: the remainder has the divisor's sign, as Python's % (floats from opset
// 28: a zero remainder takes the divisor's sign, x % +-inf is x or the divisor).
template <class A, class B>
static inline std::common_type_t<A, B> pf_floor_mod(A a, B b) {
  using T = std::common_type_t<A, B>;
  if constexpr (std::is_integral_v<T>) {
    const T r = pf_trunc_mod((T)a, (T)b);
    return (r != 0 && ((r < 0) != ((T)b < 0))) ? T(r + (T)b) : r;
  } else {
    using W = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const W r = std::fmod((W)a, (W)b), d = (W)b;
    return T(r == 0 ? std::copysign(W(0), d) : ((r < 0) != (d < 0) ? r + d : r));
  }
}

// Gather-style index: negative counts from the end; clamped into [0, n) so that a bad index
// can never read outside the tensor.
static inline int64_t pf_wrap_index(int64_t i, int64_t n) {
  i = i < 0 ? i + n : i;
  return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

// Pad mode "reflect": mirror i into [0, n) without repeating the edge element.
static inline int64_t pf_reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i = i % period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// floor(a / b) for b > 0 (C's / truncates toward zero): index arithmetic that may go negative.
static inline int64_t pf_floordiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return q - (a % b != 0 && a < 0);
}

// Pad mode "wrap": i modulo n, in [0, n).
static inline int64_t pf_wrapmod(int64_t i, int64_t n) {
  i = i % n;
  return i < 0 ? i + n : i;
}

// ---- Narrow element types (the table in polyfuse/ir/narrow_types.py) -----------------------
// float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0), bfloat16, float4 E2M1 and the 4- and 2-bit
// integers are stored unpacked, one byte per element (bfloat16: two) holding the type's bit
// pattern (a 4- or 2-bit integer in the low bits, two's complement when signed), as numpy with
// ml_dtypes holds them. Kernels only copy these bytes or convert them in a Cast:
//   pf_from_<type>(code)              the value, exactly: a float (int8_t/uint8_t for integers);
//   pf_to_<type>(x, saturate, round)  the code for a value of any standard type.
// The conversions are those of ONNX's reference implementation (onnx.reference's Cast: ml_dtypes
// conversions, saturate_cast, to_float8e8m0), bit for bit; tests/test_narrow_types.py checks every
// code and every float32 rounding boundary. Integer bit manipulation only, no float arithmetic.
namespace pf_narrow {

// How a float format spends its largest codes. IEEE: the top exponent holds inf and NaNs
// (E5M2, bfloat16). FN: no inf, S.1111.111 is NaN (E4M3FN). FNUZ: no inf, no -0, 1000_0000
// is the only NaN (E4M3FNUZ, E5M2FNUZ). FINITE: every code is a number (float4 E2M1).
enum Kind { IEEE, FN, FNUZ, FINITE };

// Magnitude code of the largest finite value of a format with E exponent and M mantissa bits.
template <int E, int M, Kind K>
constexpr uint32_t max_code() {
  constexpr uint32_t all = (1u << (E + M)) - 1;
  return K == IEEE ? all - (1u << M) : (K == FN ? all - 1 : all);
}

static inline uint32_t bits_of(float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; }
static inline uint64_t bits_of(double x) { uint64_t u; std::memcpy(&u, &x, 8); return u; }
static inline float float_of(uint32_t u) { float x; std::memcpy(&x, &u, 4); return x; }

// The float value of code c of format (E, M, bias B, K); NaN codes give a quiet NaN with the
// code's sign (FNUZ's one NaN gives -NaN, as ml_dtypes does).
template <int E, int M, int B, Kind K>
static inline float decode(uint32_t c) {
  constexpr uint32_t top = max_code<E, M, K>(), mmask = (1u << M) - 1;
  c &= (2u << (E + M)) - 1;  // a code's bits only
  const uint32_t sign = (c >> (E + M)) << 31, a = c & ((1u << (E + M)) - 1);
  if (K == FNUZ && c == 1u << (E + M)) return float_of(0xFFC00000u);
  if (a > top) return float_of(sign | (K == IEEE && a == top + 1 ? 0x7F800000u : 0x7FC00000u));
  if (a == 0) return float_of(sign);
  const uint32_t e = a >> M;
  if (e) return float_of(sign | (e + 127 - B) << 23 | (a & mmask) << (23 - M));
  const int p = 31 - __builtin_clz(a);  // a subnormal: a * 2^(1-B-M), normalised at its top bit
  return float_of(sign | uint32_t(p + 1 - B - M + 127) << 23 | ((a << (M - p)) & mmask) << (23 - M));
}

// The code of format (E, M, B, K) nearest to x (float or double), ties to even. Out of range:
// the largest finite code with `saturate` or for FINITE formats, else inf (IEEE) or NaN.
template <int E, int M, int B, Kind K, class T>
static inline uint32_t encode(T x, bool saturate) {
  using U = decltype(bits_of(x));
  constexpr int SE = sizeof(T) == 4 ? 8 : 11, SM = sizeof(T) == 4 ? 23 : 52, SB = (1 << (SE - 1)) - 1;
  constexpr uint32_t top = max_code<E, M, K>(), inf_code = top + 1;
  const U u = bits_of(x), a = u & ((U(1) << (SE + SM)) - 1), inf = ((U(1) << SE) - 1) << SM;
  const uint32_t sign = uint32_t(u >> (SE + SM)) << (E + M);
  if (a > inf) {  // NaN
    if (K == FNUZ) return 1u << (E + M);
    if (K == FINITE) return sign ? 0 : 1u << (E + M);  // ml_dtypes: NaN becomes a zero of the other sign
    return sign | (K == IEEE ? inf_code | 1u << (M - 1) : top + 1);
  }
  uint64_t code = uint64_t(top) + 1;  // inf: out of range
  if (a < inf) {
    const int e = int(a >> SM), ue = (e ? e : 1) - SB;  // ue: exponent of the leading bit's place
    const U mant = (a & ((U(1) << SM) - 1)) | (e ? U(1) << SM : 0);
    const int sub = (1 - B) - ue;  // binades below the smallest normal of the target
    const int shift = SM - M + (sub > 0 ? sub : 0);
    uint64_t q = 0;
    if (shift <= SM + 1) {  // else below a quarter of the smallest subnormal: 0
      const U rem = mant & ((U(1) << shift) - 1), half = U(1) << (shift - 1);
      q = uint64_t(mant >> shift);
      q += rem > half || (rem == half && (q & 1));
    }
    // q counts units of the target's last place; a carry into the next binade is the next code
    code = sub > 0 ? q : (uint64_t(ue + B - 1) << M) + q;
  }
  if (code > top) {
    if (K == FINITE || saturate) code = top;
    else return K == IEEE ? sign | inf_code : (K == FNUZ ? 1u << (E + M) : sign | (top + 1));
  }
  if (K == FNUZ && code == 0) return 0;  // no -0
  return sign | uint32_t(code);
}

// An integer as a double rounded to odd: exact up to 2^53, else truncated to 53 bits with the
// last one set when any bit below was, so rounding it again to a narrower type rounds the
// integer itself correctly (as ml_dtypes converts int64 to bfloat16).
template <class T>
static inline double odd_double(T x) {
  const bool negative = std::is_signed_v<T> && x < T(0);
  uint64_t m = negative ? 0 - uint64_t(x) : uint64_t(x);
  if (m >> 53) {
    const int shift = 11 - __builtin_clzll(m);  // bits below the top 53
    m = (m >> shift | ((m & ((uint64_t(1) << shift) - 1)) != 0)) << shift;
  }
  return negative ? -double(m) : double(m);
}

// Any standard type as the source: integers (and bool) through odd_double, float16 through float
// (exact).
template <class T>
static inline auto wide(T x) {
  if constexpr (std::is_integral_v<T>) return odd_double(x);
  else if constexpr (std::is_same_v<T, double>) return x;
  else return float(x);
}

// 4- and 2-bit integers: an integer keeps its low bits (wraps); a float is truncated toward
// zero and gives 0 when that is out of range or NaN (ml_dtypes' conversion).
template <int N, bool SIGNED, class T>
static inline uint8_t encode_int(T x) {
  constexpr uint8_t mask = (1u << N) - 1;
  if constexpr (std::is_integral_v<T>) {
    return uint8_t(uint64_t(x) & mask);
  } else {
    constexpr double lo = SIGNED ? -double(1 << (N - 1)) : 0.0, hi = SIGNED ? double((1 << (N - 1)) - 1) : mask;
    const double t = std::trunc(double(x));
    return (t >= lo && t <= hi) ? uint8_t(int(t) & mask) : uint8_t(0);
  }
}
template <int N, bool SIGNED>
static inline std::conditional_t<SIGNED, int8_t, uint8_t> decode_int(uint8_t c) {
  const int v = c & ((1 << N) - 1);
  return SIGNED && v >= (1 << (N - 1)) ? v - (1 << N) : v;
}

}  // namespace pf_narrow

#define PF_NARROW_FLOAT(NAME, STORE, E, M, B, KIND)                                              \
  static inline float pf_from_##NAME(STORE c) { return pf_narrow::decode<E, M, B, pf_narrow::KIND>(c); } \
  template <class T>                                                                            \
  static inline STORE pf_to_##NAME(T x, bool saturate, int) {                                   \
    return STORE(pf_narrow::encode<E, M, B, pf_narrow::KIND>(pf_narrow::wide(x), saturate));    \
  }
PF_NARROW_FLOAT(f8e4m3fn, uint8_t, 4, 3, 7, FN)
PF_NARROW_FLOAT(f8e4m3fnuz, uint8_t, 4, 3, 8, FNUZ)
PF_NARROW_FLOAT(f8e5m2, uint8_t, 5, 2, 15, IEEE)
PF_NARROW_FLOAT(f8e5m2fnuz, uint8_t, 5, 2, 16, FNUZ)
PF_NARROW_FLOAT(f4e2m1, uint8_t, 2, 1, 1, FINITE)
#undef PF_NARROW_FLOAT
// bfloat16 is the top half of a float32 (its subnormals are float32 subnormals, NaN payloads
// kept); `saturate` does not apply to it: out of range is inf.
static inline float pf_from_bf16(uint16_t c) { return pf_narrow::float_of(uint32_t(c) << 16); }
template <class T>
static inline uint16_t pf_to_bf16(T x, bool, int) {
  return uint16_t(pf_narrow::encode<8, 7, 127, pf_narrow::IEEE>(pf_narrow::wide(x), false));
}

#define PF_NARROW_INT(NAME, N, SIGNED)                                                          \
  static inline auto pf_from_##NAME(uint8_t c) { return pf_narrow::decode_int<N, SIGNED>(c); }  \
  template <class T>                                                                            \
  static inline uint8_t pf_to_##NAME(T x, bool, int) { return pf_narrow::encode_int<N, SIGNED>(x); }
PF_NARROW_INT(int4, 4, true)
PF_NARROW_INT(uint4, 4, false)
PF_NARROW_INT(int2, 2, true)
PF_NARROW_INT(uint2, 2, false)
#undef PF_NARROW_INT

// float8 E8M0: a power of two 2^(c-127), 0xFF is NaN. Encoding reads the float32 exponent (the
// sign is dropped) and rounds by `round`: 0 up (any fraction), 1 down, 2 nearest (as ONNX's
// reference: up when the fraction's top bit is set and, for exponent 0, any lower bit too);
// `saturate` stops rounding up past 2^127. inf and NaN give NaN.
static inline float pf_from_f8e8m0(uint8_t c) {
  return pf_narrow::float_of(c == 0xFF ? 0x7FC00000u : (c ? uint32_t(c) << 23 : 0x00400000u));
}
template <class T>
static inline uint8_t pf_to_f8e8m0(T x, bool saturate, int round) {
  const uint32_t u = pf_narrow::bits_of(float(x)), e = (u >> 23) & 0xFF;
  if (e == 0xFF) return 0xFF;
  bool up = false;
  if (round == 0) up = (u & 0x7FFFFF) != 0;
  else if (round == 2) up = (u >> 22 & 1) && ((u >> 21 & 1) || (u & 0x1FFFFF) || e > 0);
  if (up && saturate && e == 0xFE) up = false;
  return uint8_t(e + up);
}
