"""polyfuse.visualize: the SVG / HTML drawing of a graph and its fusion groups."""
from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from helpers import model
from polyfuse.frontend import import_onnx
from polyfuse.ir import Graph, Node, Value
from polyfuse.visualize import Group, groups_from_lowered, render_html, render_svg, write

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parent.parent


def _small():
    """x -> Add(b) -> Relu -> Reshape -> MatMul(W) -> Softmax -> y, plus a Neg side output."""
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["rs"], name="reshape"),
        helper.make_node("MatMul", ["rs", "w"], ["m"], name="matmul"),
        helper.make_node("Softmax", ["m"], ["y"], name="softmax", axis=-1),
        helper.make_node("Neg", ["x"], ["z"], name="neg"),
    ]
    inits = [("b", np.ones(8, np.float32)), ("shape", np.array([2, 8])), ("w", np.ones((8, 4), np.float32))]
    g = import_onnx(model(nodes, [("x", np.float32, [2, 8])], [("y", np.float32, None), ("z", np.float32, None)], inits))
    groups = [Group("k0", "pointwise", ["add", "relu"], "max(x + b, 0)"), Group("k1", "contraction", ["matmul"]),
              Group("k2", "reduction", ["softmax"], "exp(m - max) / sum"), Group("k3", "pointwise", ["neg"], "-x")]
    return g, groups


def _boxes(svg: str):
    """{node name: rect element} for every node box (a <g class="node ..."> with a <title>)."""
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(SVG + "g"):
        if "node" in g.get("class", "").split():
            out[g.find(SVG + "title").text.split("\n")[0]] = (g, g.find(SVG + "rect"))
    return out


def _chain(n: int, skip: int = 0) -> Graph:
    """A chain of n elementwise nodes; with ``skip``, every node also reads the value ``skip`` nodes back."""
    values = {"x": Value("x", np.dtype(np.float32), (1, 128, 768))}
    nodes, prev = [], ["x"]
    for i in range(n):
        ins = [prev[-1]] + ([prev[-skip]] if skip and len(prev) > skip else [])
        nodes.append(Node("Add" if i % 3 else "Mul", ins, [f"v{i}"], name=f"n{i}"))
        values[f"v{i}"] = Value(f"v{i}", np.dtype(np.float32), (1, 128, 768))
        prev.append(f"v{i}")
    return Graph(nodes, values, ["x"], [prev[-1]], 17)


def test_svg_is_xml_with_one_box_per_node():
    g, groups = _small()
    svg = render_svg(g, groups, title="small")
    boxes = _boxes(svg)
    assert sorted(boxes) == sorted(n.name for n in g.nodes)
    assert "view" in boxes["reshape"][0].get("class")  # in no group: drawn as a view
    assert boxes["reshape"][1].get("stroke-dasharray")
    assert "view" not in boxes["add"][0].get("class")
    root = ET.fromstring(svg)
    io = [e for e in root.iter(SVG + "g") if e.get("class") == "io"]
    assert len(io) == 3  # input x, outputs y and z
    assert len([p for p in root.iter(SVG + "path") if p.get("class") == "edge"]) == 8  # 6 node inputs + 2 outputs


def test_group_members_share_a_colour_and_groups_differ():
    g, groups = _small()
    boxes = _boxes(render_svg(g, groups))
    strokes = []
    for grp in groups:
        colours = {(boxes[n][1].get("stroke"), boxes[n][1].get("fill")) for n in grp.nodes}
        assert len(colours) == 1, grp
        strokes.append(colours.pop())
        assert all(boxes[n][0].get("data-g") == str(groups.index(grp)) for n in grp.nodes)
    assert len(set(strokes)) == len(groups)


def test_layers_go_top_to_bottom():
    g, groups = _small()
    boxes = _boxes(render_svg(g, groups))
    y = {n: float(re.search(r"translate\([\d.]+,([\d.]+)\)", b[0].get("transform")).group(1)) for n, b in boxes.items()}
    assert y["add"] < y["relu"] < y["reshape"] < y["matmul"] < y["softmax"]


def test_html_has_legend_table_and_no_external_resources():
    g, groups = _small()
    page = render_html(g, groups, title="small model")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<?xml" not in page
    assert 'class="legend"' in page and "no kernel (view / folded): 1" in page
    rows = re.findall(r'<tr data-g="(\d+)">(.*?)</tr>', page)
    assert [int(i) for i, _ in rows] == [0, 1, 2, 3]
    assert "k0" in rows[0][1] and "pointwise" in rows[0][1] and "Add, Relu" in rows[0][1]
    assert "max(x + b, 0)" in rows[0][1] and "MatMul" in rows[1][1]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count("<script") == 1


def test_untrusted_strings_are_escaped():
    bad = ['</script><script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "a&b'\x01c"]
    values = {"x": Value("x", np.dtype(np.float32), (4,))}
    nodes, prev = [], "x"
    for i, s in enumerate(bad):
        out = f"{s}#{i}"
        values[out] = Value(out, np.dtype(np.float32), (4,))
        nodes.append(Node(s if i != 1 else "Relu", [prev], [out], name=s))
        prev = out
    g = Graph(nodes, values, ["x"], [prev], 17, name=bad[0])
    groups = [Group(bad[1], bad[0], [bad[0], bad[1]], expression=bad[1])]
    svg, page = render_svg(g, groups, title=bad[1]), render_html(g, groups, title=bad[0])
    ET.fromstring(svg)  # still well-formed, even with a control character in a name
    for text in (svg, page):
        assert "<img" not in text and "alert(1)</script>" not in text and "\x01" not in text
        assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert page.count("<script") == 1 and page.count("</script>") == 1
    script = page[page.index("<script>"):page.index("</script>")]
    assert "alert" not in script and "img" not in script
    assert len(_boxes(svg)) == 3


def test_chain_of_2000_renders_fast():
    g = _chain(2000)
    t = time.perf_counter()
    svg = render_svg(g, [Group(f"k{i}", "pointwise", [f"n{i}", f"n{i + 1}"]) for i in range(0, 2000, 2)])
    assert time.perf_counter() - t < 5.0
    assert len(_boxes(svg)) == 2000


def test_3000_nodes_with_long_edges_render_fast():
    g = _chain(3000, skip=7)  # every node also reads a value 7 back: many dummy chains
    groups = [Group(f"k{i}", "pointwise", [f"n{j}" for j in range(i, min(i + 5, 3000))]) for i in range(0, 3000, 5)]
    t = time.perf_counter()
    page = render_html(g, groups)
    assert time.perf_counter() - t < 5.0
    assert page.count('<g class="node"') == 3000


def test_degenerate_graphs():
    empty = Graph([], {"x": Value("x", np.dtype(np.float32), (2,))}, ["x"], ["x"], 17)
    ET.fromstring(render_svg(empty, []))
    assert "<table" in render_html(empty, [])
    g, _ = _small()
    ET.fromstring(render_svg(g, [Group("k9", "pointwise", ["no-such-node", "add"]), Group("k10", "x", ["add"])]))


def test_write_picks_format_by_suffix(tmp_path):
    g, groups = _small()
    write(tmp_path / "a.svg", g, groups)
    ET.parse(tmp_path / "a.svg")
    for name in ("b.html", "c.HTM"):
        assert (tmp_path / name).exists() is False
        write(tmp_path / name, g, groups, title="t")
        assert (tmp_path / name).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    for name in ("d.png", "e", "f.svg.gz"):
        with pytest.raises(ValueError):
            write(tmp_path / name, g, groups)
        assert not (tmp_path / name).exists()


def test_tiny_bert_with_kernels_from_the_lowering(tmp_path):
    from polyfuse.kernel import lower_graph
    from polyfuse.pipeline import frontend

    comp = frontend(str(ROOT / "examples" / "tiny_bert.onnx"), {"input_ids": (1, 16)})
    lowered = lower_graph(comp.graph)
    groups = groups_from_lowered(lowered)
    assert len(groups) == len(lowered.kernels)
    names = {n.name for n in comp.graph.nodes}
    assert all(set(grp.nodes) <= names for grp in groups)
    svg = write(tmp_path / "tiny.svg", comp.graph, groups).read_text(encoding="utf-8")
    boxes = _boxes(svg)
    assert len(boxes) == len(comp.graph.nodes)
    views = sum("view" in g.get("class") for g, _ in boxes.values())
    assert views == len(names - {n for grp in groups for n in grp.nodes})
    assert json.dumps([grp.kind for grp in groups])  # plain strings
