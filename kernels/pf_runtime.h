// polyfuse runtime helpers included by every generated host kernel file.
// Scalar helpers that generated expressions call; each matches ONNX semantics.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

// max/min over the operands' common type (ints stay ints, floats stay floats).
template <class A, class B>
static inline std::common_type_t<A, B> pf_max(A a, B b) {
  using T = std::common_type_t<A, B>;
  return (T)a > (T)b ? (T)a : (T)b;
}
template <class A, class B>
static inline std::common_type_t<A, B> pf_min(A a, B b) {
  using T = std::common_type_t<A, B>;
  return (T)a < (T)b ? (T)a : (T)b;
}

static inline float pf_sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
static inline double pf_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Integer division truncating toward zero (ONNX Div on integers, as onnxruntime does);
// division by zero gives 0 instead of trapping.
template <class A, class B>
static inline std::common_type_t<A, B> pf_idiv(A a, B b) {
  using T = std::common_type_t<A, B>;
  return (T)b == 0 ? T(0) : T((T)a / (T)b);
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

// Pad mode "wrap": i modulo n, in [0, n).
static inline int64_t pf_wrapmod(int64_t i, int64_t n) {
  i = i % n;
  return i < 0 ? i + n : i;
}
