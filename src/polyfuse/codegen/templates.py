"""Locate and load the Jinja templates of ``codegen_templates/``."""
from __future__ import annotations

import functools

import jinja2

from ..errors import UnsupportedError
from ..resources import templates_dir


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["brace"] = lambda row: "{" + ", ".join(str(x) for x in row) + "}"  # a C initializer
    env.globals["refuse"] = _refuse
    env.globals["pow2_at_most"] = lambda n, cap: min(cap, 1 << max(0, int(n) - 1).bit_length())  # work-groups
    return env


def _refuse(message: str):
    """Called by a template for a kernel its target cannot take: a clear compile-time error."""
    raise UnsupportedError(message)


def render(name: str, **kw) -> str:
    return environment().get_template(name).render(**kw)


def render_for(folders, name: str, **kw) -> str:
    """Template ``name`` from the first of ``folders`` (a Target's ``templates``) that has it."""
    return environment().select_template([f"{d}/{name}" for d in folders]).render(**kw)


def render_module_for(folders, name: str, **kw) -> tuple[str, dict]:
    """Like :func:`render_for`, and the variables the template sets at its top level (``launch``)."""
    module = environment().select_template([f"{d}/{name}" for d in folders]).make_module(kw)
    return str(module), {k: getattr(module, k) for k in dir(module) if not k.startswith("_")}
