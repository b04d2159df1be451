"""Locate and load the Jinja templates of ``codegen_templates/``."""
from __future__ import annotations

import functools

import jinja2

from ..resources import templates_dir


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["brace"] = lambda row: "{" + ", ".join(str(x) for x in row) + "}"  # a C initializer
    return env


def render(name: str, **kw) -> str:
    return environment().get_template(name).render(**kw)


def render_for(folders, name: str, **kw) -> str:
    """Template ``name`` from the first of ``folders`` (a Target's ``templates``) that has it."""
    return environment().select_template([f"{d}/{name}" for d in folders]).render(**kw)
