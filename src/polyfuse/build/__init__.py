"""Build: memory plan, weights blob, native compilation with a cache, artifact directories."""
