// OpenCL C helpers every generated kernel may call: the same names and semantics as the C++
// helpers of pf_runtime.h (NaN-propagating max/min, C's pow, ONNX's integer division and Mod,
// clamped gather indices). The program is built from this prelude followed by the kernels.
// Overloads use clang's overloadable attribute (PoCL, oclgrind and the Adreno and Mali
// compilers are clang-based); integer literals of generated code are int or long.
#pragma once

static const char kPfClPrelude[] = R"PFCL(
#define PF_OL __attribute__((overloadable))

#define PF_MAXMIN_F(A, B) \
  PF_OL float pf_max(A a, B b) { const float x = a, y = b; return (x > y || x != x) ? x : y; } \
  PF_OL float pf_min(A a, B b) { const float x = a, y = b; return (x < y || x != x) ? x : y; }
#define PF_MAXMIN_I(T, A, B) \
  PF_OL T pf_max(A a, B b) { const T x = a, y = b; return x > y ? x : y; } \
  PF_OL T pf_min(A a, B b) { const T x = a, y = b; return x < y ? x : y; }
PF_MAXMIN_F(float, float) PF_MAXMIN_F(float, int) PF_MAXMIN_F(int, float) PF_MAXMIN_F(float, long)
PF_MAXMIN_F(long, float)
PF_MAXMIN_I(int, int, int) PF_MAXMIN_I(long, long, long) PF_MAXMIN_I(long, long, int) PF_MAXMIN_I(long, int, long)
PF_MAXMIN_I(uchar, uchar, uchar) PF_MAXMIN_I(int, uchar, int) PF_MAXMIN_I(int, int, uchar)

PF_OL float pf_abs(float x) { return fabs(x); }
PF_OL int pf_abs(int x) { return x < 0 ? -x : x; }
PF_OL long pf_abs(long x) { return x < 0 ? -x : x; }
PF_OL int pf_isnan(float x) { return x != x; }
PF_OL int pf_isnan(int x) { return 0; }
PF_OL int pf_isnan(long x) { return 0; }
PF_OL int pf_isfinite(float x) { return x - x == x - x; }
PF_OL int pf_isfinite(int x) { return 1; }
PF_OL int pf_isfinite(long x) { return 1; }
float pf_sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// C's pow: the power of |a|, then the sign and NaN of a negative base by C's rules.
float pf_powf(float x, float y) {
  const float r = pow(fabs(x), y);
  const int whole = floor(y) == y;
  const int odd = whole && fabs(y) < 16777216.0f && fmod(y, 2.0f) != 0.0f;
  if (!signbit(x)) return r;
  if (odd) return -r;
  return (whole || x == 0.0f || isinf(x)) ? r : NAN;
}
PF_OL float pf_pow(float a, float b) { return pf_powf(a, b); }
PF_OL float pf_pow(float a, int b) { return pf_powf(a, (float)b); }
PF_OL float pf_pow(float a, long b) { return pf_powf(a, (float)b); }
PF_OL float pf_pow(int a, float b) { return pf_powf((float)a, b); }
PF_OL float pf_pow(long a, float b) { return pf_powf((float)a, b); }

#define PF_INTOPS(T) \
  PF_OL T pf_idiv(T a, T b) { return b == 0 ? (T)0 : (T)(a / b); } \
  PF_OL T pf_trunc_mod(T a, T b) { return (b == 0 || b == (T)-1) ? (T)0 : (T)(a % b); } \
  PF_OL T pf_floor_mod(T a, T b) { const T r = pf_trunc_mod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r; }
PF_INTOPS(int) PF_INTOPS(long)
PF_OL float pf_trunc_mod(float a, float b) { return fmod(a, b); }
PF_OL float pf_floor_mod(float a, float b) {
  const float r = fmod(a, b);
  return r == 0.0f ? copysign(0.0f, b) : ((r < 0.0f) != (b < 0.0f) ? r + b : r);
}

long pf_wrap_index(long i, long n) { i = i < 0 ? i + n : i; return i < 0 ? 0 : (i >= n ? n - 1 : i); }
long pf_reflect(long i, long n) {
  if (n == 1) return 0;
  const long period = 2 * (n - 1);
  i = i % period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}
long pf_floordiv(long a, long b) { const long q = a / b; return q - (a % b != 0 && a < 0); }
long pf_wrapmod(long i, long n) { i = i % n; return i < 0 ? i + n : i; }
#define pf_select(c, a, b) ((c) ? (a) : (b))
)PFCL";
