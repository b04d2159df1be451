"""Test/benchmark helpers for polyfuse (model export, reference outputs)."""
