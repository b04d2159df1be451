// OpenCL C helpers every generated kernel may call: the same names and semantics as the C++
// helpers of pf_runtime.h (NaN-propagating max/min, C's pow, ONNX's integer division and Mod,
// clamped gather indices). The program is built from this prelude followed by the kernels.
// Overloads use clang's overloadable attribute (PoCL, oclgrind and the Adreno and Mali
// compilers are clang-based); integer literals of generated code are int or long.
#pragma once

static const char kPfClPrelude[] = R"PFCL(
#define PF_OL __attribute__((overloadable))

// Every integer type, for the same-type overloads; mixed pairs come from literals (int), so each
// type also pairs with int, and with float (a Cast feeding a float op).
#define PF_FOR_INTS(X) X(char) X(uchar) X(short) X(ushort) X(int) X(uint) X(long) X(ulong)

#define PF_MAXMIN_F(A, B) \
  PF_OL float pf_max(A a, B b) { const float x = a, y = b; return (x > y || x != x) ? x : y; } \
  PF_OL float pf_min(A a, B b) { const float x = a, y = b; return (x < y || x != x) ? x : y; }
#define PF_MAXMIN_I(T, A, B) \
  PF_OL T pf_max(A a, B b) { const T x = a, y = b; return x > y ? x : y; } \
  PF_OL T pf_min(A a, B b) { const T x = a, y = b; return x < y ? x : y; }
PF_MAXMIN_F(float, float)
#define PF_MAXMIN_ALL(T) PF_MAXMIN_F(float, T) PF_MAXMIN_F(T, float) PF_MAXMIN_I(T, T, T)
PF_FOR_INTS(PF_MAXMIN_ALL)
#define PF_MAXMIN_WITH_INT(T) PF_MAXMIN_I(int, T, int) PF_MAXMIN_I(int, int, T)
PF_MAXMIN_WITH_INT(char) PF_MAXMIN_WITH_INT(uchar) PF_MAXMIN_WITH_INT(short) PF_MAXMIN_WITH_INT(ushort)
PF_MAXMIN_I(long, long, int) PF_MAXMIN_I(long, int, long) PF_MAXMIN_I(uint, uint, int) PF_MAXMIN_I(uint, int, uint)
PF_MAXMIN_I(ulong, ulong, int) PF_MAXMIN_I(ulong, int, ulong)

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
// An integer to an integer power: exact (the CPU computes it in double, exact to 2^53).
long pf_powl(long b, long e) {
  if (e < 0) return b == 1 ? 1 : (b == -1 ? ((e & 1) ? -1 : 1) : 0);
  long r = 1;
  for (; e; e >>= 1, b *= b)
    if (e & 1) r *= b;
  return r;
}
#define PF_POW_INT(T) \
  PF_OL float pf_pow(float a, T b) { return pf_powf(a, (float)b); } \
  PF_OL float pf_pow(T a, float b) { return pf_powf((float)a, b); }
PF_OL float pf_pow(float a, float b) { return pf_powf(a, b); }
PF_FOR_INTS(PF_POW_INT)
#define PF_POW_II(A) PF_POW_II2(A, char) PF_POW_II2(A, uchar) PF_POW_II2(A, short) PF_POW_II2(A, ushort) \
  PF_POW_II2(A, int) PF_POW_II2(A, uint) PF_POW_II2(A, long) PF_POW_II2(A, ulong)
#define PF_POW_II2(A, B) PF_OL long pf_pow(A a, B b) { return pf_powl((long)a, (long)b); }
PF_FOR_INTS(PF_POW_II)

#define PF_INTOPS(T) \
  PF_OL T pf_idiv(T a, T b) { return b == 0 ? (T)0 : (T)(a / b); } \
  PF_OL T pf_trunc_mod(T a, T b) { return (b == 0 || ((T)-1 < (T)0 && b == (T)-1)) ? (T)0 : (T)(a % b); } \
  PF_OL T pf_floor_mod(T a, T b) { const T r = pf_trunc_mod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r; }
PF_FOR_INTS(PF_INTOPS)
// With an int literal: in the wider type, as C++'s common type.
#define PF_INTOPS_LIT(R, T) \
  PF_OL R pf_idiv(T a, int b) { return pf_idiv((R)a, (R)b); } \
  PF_OL R pf_idiv(int a, T b) { return pf_idiv((R)a, (R)b); } \
  PF_OL R pf_trunc_mod(T a, int b) { return pf_trunc_mod((R)a, (R)b); } \
  PF_OL R pf_trunc_mod(int a, T b) { return pf_trunc_mod((R)a, (R)b); } \
  PF_OL R pf_floor_mod(T a, int b) { return pf_floor_mod((R)a, (R)b); } \
  PF_OL R pf_floor_mod(int a, T b) { return pf_floor_mod((R)a, (R)b); }
PF_INTOPS_LIT(int, char) PF_INTOPS_LIT(int, uchar) PF_INTOPS_LIT(int, short) PF_INTOPS_LIT(int, ushort)
PF_INTOPS_LIT(uint, uint) PF_INTOPS_LIT(long, long) PF_INTOPS_LIT(ulong, ulong)
PF_OL float pf_trunc_mod(float a, float b) { return fmod(a, b); }
PF_OL float pf_floor_mod(float a, float b) {
  const float r = fmod(a, b);
  return r == 0.0f ? copysign(0.0f, b) : ((r < 0.0f) != (b < 0.0f) ? r + b : r);
}
PF_OL float pf_trunc_mod(float a, int b) { return pf_trunc_mod(a, (float)b); }
PF_OL float pf_floor_mod(float a, int b) { return pf_floor_mod(a, (float)b); }

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
#define pf_and(a, b) ((a) && (b))
#define pf_or(a, b) ((a) || (b))
)PFCL";
