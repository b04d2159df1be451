"""Code generation: sympy kernel IR -> C++ / OpenCL source through Jinja templates."""
