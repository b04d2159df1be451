// The OpenCL driver, loaded at run time (dlopen): one binary runs with or without a GPU driver
// and says clearly when there is none. Only the few API functions polyfuse calls are declared,
// with the types of the OpenCL 1.2 headers (no CL headers are needed to build).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string>

typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef uint64_t cl_ulong;
typedef cl_ulong cl_bitfield;
typedef struct _cl_platform_id* cl_platform_id;
typedef struct _cl_device_id* cl_device_id;
typedef struct _cl_context* cl_context;
typedef struct _cl_command_queue* cl_command_queue;
typedef struct _cl_mem* cl_mem;
typedef struct _cl_program* cl_program;
typedef struct _cl_kernel* cl_kernel;
typedef struct _cl_event* cl_event;

struct PfCl {
  void* lib = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  std::string device_name;
  size_t max_work_group = 0;
  cl_ulong local_mem = 0;

#define PF_CL_FN(ret, name, args) ret(*name) args = nullptr;
#include "pf_cl_functions.h"
#undef PF_CL_FN
};

// Loads the driver (PF_OPENCL_LIB, else the standard places on Android and Linux), picks a GPU
// (else any device), and creates a context and an in-order queue (with profiling when asked:
// then every command's start and end times can be read). False with a message in err.
bool pf_cl_open(PfCl* cl, bool profiling, std::string* err);
// Nanoseconds from a finished command's start to its end (0 when unknown).
uint64_t pf_cl_event_ns(PfCl* cl, cl_event e);
void pf_cl_close(PfCl* cl);
// A program from `count` sources, built for the device; false with the build log in err. The
// device's binary is cached in $PF_OPENCL_CACHE, else $XDG_CACHE_HOME/polyfuse-opencl or
// ~/.cache/polyfuse-opencl (none when neither is set, as in an Android app: set PF_OPENCL_CACHE
// to its cache folder), keyed by device, driver, options and source; a bad entry is rebuilt.
bool pf_cl_build(PfCl* cl, const char* const* sources, int count, cl_program* out, std::string* err);
// "clFoo failed: CL_OUT_OF_RESOURCES (-5)".
std::string pf_cl_error(const char* what, cl_int code);
