// polyfuse runtime helpers included by every generated host kernel file.
// Scalar helpers that generated expressions call; each matches ONNX semantics.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

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

// c ? a : b with both values already computed (their loads are in range everywhere): a blend.
// Loads written inside a ?: branch become masked loads when gcc vectorises, and gcc 12.2
// miscompiles some of those (tests/compiler_bugs/); codegen/printer.py prints this instead.
template <class C, class A, class B>
static inline std::common_type_t<A, B> pf_select(C c, A a, B b) {
  return c ? a : b;
}

// c[0] * x^(N-1) + c[1] * x^(N-2) + ... + c[N-1] by Horner's rule (fully unrolled, vectorisable).
template <int N>
static inline float pf_poly(float x, const float (&c)[N]) {
  float p = c[0];
#pragma GCC unroll 16
  for (int i = 1; i < N; ++i) p = p * x + c[i];
  return p;
}

// exp for float32, branch-free so loops over it vectorize (std::expf calls do not).
// x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by a degree-6 polynomial,
// 2^n as 2^(n/2) * 2^(n - n/2) so both factors stay normal floats. Accuracy (checked against
// numpy in tests/test_vecmath.py): relative error <= 2e-7 on the normal range; subnormal
// results below exp(-87.3); 0 below -104; +inf above 88.72; NaN stays NaN.
static inline float pf_exp(float x) {
  // Clamp with NaN going to -104 (one max and one min instruction): NaN must not reach the
  // float -> int conversion below, which is undefined behaviour for it (UBSan found it).
  const float lo = x > -104.0f ? x : -104.0f;
  const float xc = lo < 88.8f ? lo : 88.8f;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  const float p = pf_poly(r, {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                              1.6666665459e-1f, 5.0000001201e-1f});
  const float y = p * r * r + r + 1.0f;
  const float n1 = std::floor(n * 0.5f);
  const uint32_t b1 = uint32_t((int32_t)n1 + 127) << 23, b2 = uint32_t((int32_t)(n - n1) + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, sizeof s1);
  std::memcpy(&s2, &b2, sizeof s2);
  return x != x ? x : y * s1 * s2;
}
static inline double pf_exp(double x) { return std::exp(x); }

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
