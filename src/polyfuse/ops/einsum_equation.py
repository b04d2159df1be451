"""Einsum equations, parsed against the operand shapes.

``parse_einsum("bhqd,bhkd->bhqk", shapes)`` gives one label per operand dimension, the output
labels and the size of every label. Shared by the numpy reference (``reference_nn``) and the
pass that rewrites Einsum into Transpose/Reshape/MatMul/Mul/ReduceSum (``passes.expand_einsum``).

Semantics (numpy's, which onnxruntime follows): spaces are ignored; without ``->`` the output
is the labels that appear exactly once, in alphabetical order, after the ellipsis dims; ``...``
stands for the leading dims an operand has beyond its letters, right-aligned across operands
and broadcast; a dim of size 1 broadcasts against the same label's larger size elsewhere;
labels absent from the output are summed over.
"""
from __future__ import annotations

from dataclasses import dataclass

ELLIPSIS = "..."


@dataclass(frozen=True)
class EinsumSpec:
    inputs: tuple  # per operand, one label per dim; ellipsis dims are labelled ".0", ".1", ...
    output: tuple
    sizes: dict  # label -> size after broadcasting

    def letters(self) -> dict:
        """label -> one distinct ASCII letter, for numpy.einsum."""
        labels = list(dict.fromkeys(lab for op in self.inputs for lab in op))
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        if len(labels) > len(alphabet):
            raise ValueError(f"Einsum: {len(labels)} distinct labels, at most {len(alphabet)}")
        return dict(zip(labels, alphabet))


def _split_term(term: str, what: str) -> tuple[list[str], bool]:
    """The letters of one term before and after its ellipsis, and whether it has one."""
    if term.count(ELLIPSIS) > 1 or "." in term.replace(ELLIPSIS, ""):
        raise ValueError(f"Einsum: {what} {term!r} has a malformed ellipsis")
    bad = [c for c in term.replace(ELLIPSIS, "") if not c.isascii() or not c.isalpha()]
    if bad:
        raise ValueError(f"Einsum: {what} {term!r} has label {bad[0]!r}; labels are the letters a-z, A-Z")
    return list(term), ELLIPSIS in term


def _operand_labels(term: str, rank: int, k: int) -> tuple[list[str], int]:
    """Labels of operand ``k`` of ``rank`` dims, and how many dims its ellipsis stands for."""
    _split_term(term, f"operand {k} term")
    if ELLIPSIS not in term:
        if len(term) != rank:
            raise ValueError(f"Einsum: operand {k} has rank {rank} but its term {term!r} names {len(term)} dims")
        return list(term), 0
    head, tail = term.split(ELLIPSIS)
    n_ell = rank - len(head) - len(tail)
    if n_ell < 0:
        raise ValueError(f"Einsum: operand {k} has rank {rank}, fewer than the letters of its term {term!r}")
    return list(head) + [None] * n_ell + list(tail), n_ell


def parse_einsum(equation: str, shapes: list) -> EinsumSpec:
    """Parse ``equation`` for operands of ``shapes``; raise ValueError naming what is wrong."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"Einsum: equation {equation!r} has {len(terms)} operand terms for {len(shapes)} inputs")
    parsed = [_operand_labels(t, len(s), k) for k, (t, s) in enumerate(zip(terms, shapes))]
    n_ell = max((n for _, n in parsed), default=0)
    inputs, sizes = [], {}
    for k, ((labels, n), shape) in enumerate(zip(parsed, shapes)):
        ell = iter(f".{n_ell - n + d}" for d in range(n))  # right-aligned across operands
        labels = tuple(next(ell) if lab is None else lab for lab in labels)
        for lab, dim in zip(labels, shape):
            dim = int(dim)
            known = sizes.get(lab, 1)
            if dim != known and 1 not in (dim, known):
                raise ValueError(f"Einsum: label {lab if lab[0] != '.' else '...'!r} has size {dim} in "
                                 f"operand {k} but {known} elsewhere")
            sizes[lab] = dim if known == 1 else known
        inputs.append(labels)
    ell_labels = tuple(f".{d}" for d in range(n_ell))
    if arrow:
        _, has_ell = _split_term(rhs, "output term")
        head, _, tail = rhs.partition(ELLIPSIS)
        output = tuple(head) + (ell_labels if has_ell else ()) + tuple(tail)
        missing = [c for c in head + tail if c not in sizes]
        if missing:
            raise ValueError(f"Einsum: output label {missing[0]!r} appears in no operand")
        if len(set(head + tail)) != len(head + tail):
            raise ValueError(f"Einsum: output term {rhs!r} repeats a label")
    else:
        counts = {}
        for labels in inputs:
            for lab in labels:
                counts[lab] = counts.get(lab, 0) + 1
        once = sorted(lab for lab, c in counts.items() if c == 1 and lab[0] != ".")
        output = ell_labels + tuple(once)
    return EinsumSpec(tuple(inputs), output, sizes)
