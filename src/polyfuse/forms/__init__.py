"""Polynomial forms of operators.

* elementwise ops: a sympy expression of their input elements (:mod:`.elementwise`);
* data-movement ops: index maps from output to input indices (:mod:`.movement`);
* reductions: reduced axes, combiner and prologue/epilogue expressions (:mod:`.reduction`).

Kernels are generated from these forms, so fusion composes forms, never C strings.
"""
