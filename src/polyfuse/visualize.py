"""Draw a graph with its fusion groups: ``polyfuse inspect MODEL --svg FILE`` / ``--html FILE``.

The layout is a small layered drawing done here (no graphviz): layer = longest-path depth from
the graph inputs, long edges routed through invisible "dummy" points (one chain per value, shared
by all its consumers), order within a layer by barycenter sweeps, and x positions by repeatedly
pulling each item to the mean of its neighbours while keeping the layer's order and spacing
(an isotonic regression, so each layer is placed exactly in O(n)). Constants are not drawn; a
node's tooltip counts them.

Every string from the model is escaped; the HTML page's script reads only integers the
renderer wrote (``data-g`` group indices) and copies tooltip text with ``textContent``.
"""
from __future__ import annotations

import colorsys
import html
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

BOX_H, PITCH, GAP, DUMMY_W, MARGIN, TOP = 30, 62, 14, 4, 24, 52


@dataclass
class Group:
    kernel: str  # e.g. "k12"
    kind: str  # "pointwise" | "reduction" | "contraction" | "attention" | ...
    nodes: list[str]  # names of the graph nodes fused into this kernel
    expression: str = ""  # optional simplified expression, shown on hover


def groups_from_lowered(lowered) -> list[Group]:
    """One Group per kernel of a ``polyfuse.kernel.LoweredModel``, named k0, k1, ... in launch order."""
    groups = []
    for i, k in enumerate(lowered.kernels):
        kind = type(k).__name__.lower()
        if kind == "contraction":
            expr = f"GEMM {k.m}x{k.n}x{k.k}" + (f" batch {list(k.batch)}" * bool(k.batch)) + f"; epilogue {k.epilogue}"
        elif kind == "reduction":
            expr = "; ".join(f"{a} = {op}({e})" for a, op, e in k.stages) + f"; out = {k.body}"
        else:
            expr = f"out = {getattr(k, 'body', '')}"
        loads = ", ".join(f"{s} = {ld.buffer}" for s, ld in getattr(k, "loads", {}).items())
        expr = _clip(expr + (f" (where {loads})" if loads else ""), 600)
        groups.append(Group(f"k{i}", kind, list(k.sources), expr))
    return groups


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def esc(s) -> str:
    """Text safe in SVG/HTML text and quoted attributes (also drops characters XML forbids)."""
    return html.escape(_NOT_XML.sub("\ufffd", str(s)), quote=True)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _colors(i: int) -> tuple[str, str]:
    """(stroke, fill) for group ``i``: hues a golden angle apart, so neighbours always differ."""
    h = (0.58 + i * 0.381966) % 1.0
    return tuple("#" + "".join(f"{round(c * 255):02x}" for c in colorsys.hls_to_rgb(h, l, s))
                 for l, s in ((0.38, 0.6), (0.88, 0.75)))


def _shape(v) -> str:
    if v is None or v.shape is None:
        return "?"
    return "\u00d7".join(str(d) for d in v.shape) or "scalar"


def _pack(xs: list, ws: list, weights: list) -> list:
    """Positions nearest (weighted least squares) to ``xs`` that keep order and spacing."""
    off = [0.0]
    for a, b in zip(ws, ws[1:]):
        off.append(off[-1] + (a + b) / 2 + GAP)
    blocks = []  # [mean, weight, count] of pooled adjacent violators
    for x, o, w in zip(xs, off, weights):
        blocks.append([x - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks[-1]
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    flat = [m for m, _, c in blocks for _ in range(c)]
    return [q + o for q, o in zip(flat, off)]


def _width(label: str, value) -> float:
    return min(150.0, max(48.0, 6.6 * min(len(label), 24) + 16, 5.4 * min(len(_shape(value)), 26) + 12))


class _Layout:
    """Items (graph inputs, nodes, graph outputs, dummies) are ints indexing parallel lists."""

    def __init__(self, graph, groups):
        self.layer, self.kind, self.ref, self.w, self.preds, self.succs = [], [], [], [], [], []
        self.node_group: dict[str, list[int]] = {}  # node name -> indices of its groups
        for gi, g in enumerate(groups):
            for name in g.nodes:
                self.node_group.setdefault(name, []).append(gi)
        vals, producer, self.edges, self.node_items = graph.values, {}, [], []  # edge: (src, dst, slot, #slots, value)
        for name in graph.inputs:
            if not getattr(vals.get(name), "is_const", False):
                producer[name] = self._add(0, "in", name, _width(name, vals.get(name)))
        for node in graph.nodes:  # layer = longest path from the inputs; constants are not items
            ins = [v for v in node.inputs if v in producer]
            i = self._add(1 + max((self.layer[producer[v]] for v in ins), default=0), "node", node,
                          _width(node.op_type, vals.get(node.outputs[0]) if node.outputs else None))
            self.node_items.append(i)
            self.edges += [(producer[v], i, k, len(ins), v) for k, v in enumerate(ins)]
            producer.update((o, i) for o in node.outputs if o)
        self._sink()
        for name in graph.outputs:
            if name in producer:
                i = self._add(self.layer[producer[name]] + 1, "out", name, _width(name, vals.get(name)))
                self.edges.append((producer[name], i, 0, 1, name))
        self._route()
        used = {L: k for k, L in enumerate(sorted(set(self.layer)))}  # drop empty layers
        self.layer = [used[L] for L in self.layer]
        self.layers = [[] for _ in used]
        for i, L in enumerate(self.layer):
            self.layers[L].append(i)
        self._order()
        self._place()

    def _add(self, layer, kind, ref, w) -> int:
        lists = (self.layer, self.kind, self.ref, self.w, self.preds, self.succs)
        for lst, v in zip(lists, (layer, kind, ref, w, [], [])):
            lst.append(v)
        return len(self.layer) - 1

    def _sink(self):
        """Move nodes down next to their consumers where that does not lengthen the edges (e.g. the
        per-layer mask nodes that longest-path layering puts at the top, far from where they are used)."""
        users: dict[str, list[int]] = {}
        ins: dict[int, set] = {}
        outs: dict[int, set] = {}
        for s, d, _, _, v in self.edges:
            users.setdefault(v, []).append(d)
            ins.setdefault(d, set()).add(v)
            outs.setdefault(s, set()).add(v)
        for i in reversed(self.node_items):
            old = self.layer[i]
            new = min((self.layer[d] for v in outs.get(i, ()) for d in users[v]), default=0) - 1
            if new > old:  # each output's edge chain shrinks; an input's grows if i is its last user
                others = [max((self.layer[d] for d in users[v] if d != i), default=-1) for v in ins.get(i, ())]
                if sum(max(new, m) - max(old, m) for m in others) <= (new - old) * len(outs[i]):
                    self.layer[i] = new

    def _route(self):
        """Edges spanning several layers go through dummy items: one chain per value, shared by its users."""
        chains: dict[str, list[int]] = {}
        links: set = set()
        self.paths = []
        for src, dst, slot, nslots, v in self.edges:
            chain = chains.setdefault(v, [src])
            while self.layer[chain[-1]] < self.layer[dst] - 1:
                chain.append(self._add(self.layer[chain[-1]] + 1, "dummy", None, DUMMY_W))
            path = chain[: self.layer[dst] - self.layer[src]] + [dst]
            self.paths.append((path, slot, nslots))
            for a, b in zip(path, path[1:]):
                if (a, b) not in links:
                    links.add((a, b))
                    self.succs[a].append(b)
                    self.preds[b].append(a)

    def _sweeps(self, n: int):
        """Alternate top-down passes (neighbours: predecessors) and bottom-up ones (successors)."""
        for s in range(n):
            down = s % 2 == 0
            for layer in (self.layers[1:] if down else self.layers[-2::-1]):
                yield layer, self.preds if down else self.succs

    def _order(self, sweeps: int = 4):
        """Order within layers by the barycenter of the neighbours' positions."""
        pos = [0] * len(self.layer)
        for layer, nb in itertools.chain(((L, None) for L in self.layers), self._sweeps(sweeps)):
            if nb is not None:
                key = {i: sum(pos[j] for j in nb[i]) / len(nb[i]) if nb[i] else pos[i] for i in layer}
                layer.sort(key=key.__getitem__)
            for k, i in enumerate(layer):
                pos[i] = k

    def _place(self, sweeps: int = 6):
        """x: pull each item to its neighbours' mean x, keeping order and spacing, layer by layer."""
        x = [0.0] * len(self.layer)
        weight = [0.3 if k == "dummy" else 1.0 for k in self.kind]
        for layer, nb in itertools.chain(((L, None) for L in self.layers), self._sweeps(sweeps)):
            want = [sum(x[j] for j in nb[i]) / len(nb[i]) if nb and nb[i] else x[i] for i in layer]
            for i, p in zip(layer, _pack(want, [self.w[i] for i in layer], [weight[i] for i in layer])):
                x[i] = p
        # the sweeps let a long graph drift sideways a little per layer: subtract that slow trend
        mids = [fmean([x[i] for i in L if self.kind[i] != "dummy"] or [x[i] for i in L]) for L in self.layers]
        acc = list(itertools.accumulate(mids, initial=0.0))
        for k, layer in enumerate(self.layers):
            lo, hi = max(0, k - 40), min(len(mids), k + 41)
            for i in layer:
                x[i] -= (acc[hi] - acc[lo]) / (hi - lo)
        left = min((x[i] - self.w[i] / 2 for i in range(len(x))), default=0.0)
        self.x = [v - left + MARGIN for v in x]
        self.y = [TOP + BOX_H / 2 + L * PITCH for L in self.layer]
        self.width = max([self.x[i] + self.w[i] / 2 for i in range(len(x))] + [300.0]) + MARGIN
        self.height = TOP + len(self.layers) * PITCH + MARGIN

    def points(self, path, slot, nslots) -> list:
        """Polyline corners of an edge: bottom of the source, through dummies, top of the target."""
        s, d = path[0], path[-1]
        pts = [(self.x[s], self.y[s] + BOX_H / 2)]
        for i in path[1:-1]:
            pts += [(self.x[i], self.y[i] - BOX_H / 2), (self.x[i], self.y[i] + BOX_H / 2)]
        spread = min(12.0, self.w[d] / (nslots + 1))
        pts.append((self.x[d] + (slot - (nslots - 1) / 2) * spread, self.y[d] - BOX_H / 2))
        return pts


def _curve(pts) -> str:
    out = [f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 == x1:
            out.append(f"L{x1:.1f},{y1:.1f}")
        else:
            m = (y0 + y1) / 2
            out.append(f"C{x0:.1f},{m:.1f} {x1:.1f},{m:.1f} {x1:.1f},{y1:.1f}")
    return "".join(out)


_SVG_STYLE = """text{font-family:Helvetica,Arial,sans-serif}
.node text{font-size:11px;font-weight:600;text-anchor:middle;fill:#222}
.node text.s,.io text.s{font-size:9px;font-weight:400;fill:#555}
.node.view text{fill:#888}.io text{font-size:10px;text-anchor:middle;fill:#222}
.edge{fill:none;stroke:#8d8d8d;stroke-width:1}.hull{pointer-events:none;opacity:.2}
.badge text{font-size:8px;font-weight:700;fill:#fff;text-anchor:middle}
.hl .node,.hl .edge,.hl .io{opacity:.15}.hl .hull{opacity:.05}.hl .on{opacity:1}.hl .hull.on{opacity:.35}
.node.on rect{stroke-width:2.5}"""


_DASH = ' stroke-dasharray="4 3"'


def _box(lay, i, cls, tip, label, sub, fill, stroke, extra="", rx=5, badge=""):
    w, h = lay.w[i], BOX_H
    return (f'<g class="{cls}"{extra} transform="translate({lay.x[i]:.1f},{lay.y[i]:.1f})"><title>{esc(tip)}</title>'
            f'<rect x="{-w / 2:.1f}" y="{-h / 2}" width="{w:.1f}" height="{h}" rx="{rx}" fill="{fill}" stroke="{stroke}"'
            f'{_DASH if cls == "node view" else ""}/><text y="-2">{esc(_clip(label, 24))}</text>'
            f'<text class="s" y="10">{esc(_clip(sub, 26))}</text>{badge}</g>')


def _badge(kernel: str, w: float, color: str) -> str:
    """The kernel id in a pill on the top-right corner of a box ``w`` wide."""
    label = _clip(kernel, 10)
    bw = 5.4 * len(label) + 8
    return (f'<g class="badge"><rect x="{w / 2 - bw + 4:.1f}" y="{-BOX_H / 2 - 7}" width="{bw:.1f}" height="12" '
            f'rx="6" fill="{color}"/><text x="{w / 2 - bw / 2 + 4:.1f}" y="{-BOX_H / 2 + 2}">{esc(label)}</text></g>')


def _type(graph, name) -> str:
    v = graph.values.get(name)
    return f"{'?' if v is None or v.dtype is None else v.dtype} [{_shape(v)}]"


def render_svg(graph, groups, *, title: str = "") -> str:
    """A standalone SVG document: the graph top to bottom, one colour per fusion group."""
    lay = _Layout(graph, groups)
    title = title or graph.name
    colors = [_colors(i) for i in range(len(groups))]
    group_of = {i: lay.node_group[lay.ref[i].name][0] for i in lay.node_items if lay.ref[i].name in lay.node_group}
    members: dict[int, list[int]] = {}  # group -> its items, topmost first (that one carries the badge)
    for i in sorted(group_of, key=lambda i: (lay.layer[i], lay.x[i])):
        members.setdefault(group_of[i], []).append(i)
    size = f'width="{lay.width:.0f}" height="{lay.height:.0f}" viewBox="0 0 {lay.width:.0f} {lay.height:.0f}"'
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" {size}><title>{esc(title)}</title><style>{_SVG_STYLE}</style>',
           '<defs><marker id="pf-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0L8,4L0,8z" fill="#8d8d8d"/></marker></defs><rect width="100%" height="100%" '
           f'fill="#fff"/><text x="{MARGIN}" y="22" font-size="15" font-weight="700">{esc(_clip(title, 120))}</text>',
           f'<text x="{MARGIN}" y="38" font-size="10" fill="#666">{len(graph.nodes)} nodes, {len(groups)} kernels, '
           f'{len(lay.node_items) - len(group_of)} without a kernel</text>']
    # fusion hulls: padded member boxes joined by fat strokes along the group's own edges
    inner: dict[int, list] = {}
    for path, slot, nslots in lay.paths:
        g = group_of.get(path[0])
        if g is not None and g == group_of.get(path[-1]):
            inner.setdefault(g, []).append(_curve(lay.points(path, slot, nslots)))
    for g, items in members.items():
        if len(items) > 1:
            parts = [f'<rect x="{lay.x[i] - lay.w[i] / 2 - 6:.1f}" y="{lay.y[i] - BOX_H / 2 - 6:.1f}" '
                     f'width="{lay.w[i] + 12:.1f}" height="{BOX_H + 12}" rx="10"/>' for i in items]
            parts += [f'<path d="{d}" fill="none" stroke-width="18" stroke-linecap="round"/>' for d in inner.get(g, [])]
            out.append(f'<g class="hull" data-g="{g}" fill="{colors[g][0]}" stroke="{colors[g][0]}" opacity="0.2">'
                       + "".join(parts) + "</g>")
    out += [f'<path class="edge" d="{_curve(lay.points(*p))}" marker-end="url(#pf-arrow)"/>' for p in lay.paths]
    for i, kind in enumerate(lay.kind):
        if kind in ("in", "out"):
            name = lay.ref[i]
            tip = f"graph {'input' if kind == 'in' else 'output'} {name}\n{_type(graph, name)}"
            out.append(_box(lay, i, "io", tip, name, _shape(graph.values.get(name)), "#fff", "#333", rx=BOX_H / 2))
    for i in lay.node_items:
        node, gis = lay.ref[i], lay.node_group.get(lay.ref[i].name, [])
        outs = [o for o in node.outputs if o]
        tip = [node.name or "(unnamed)", f"{node.op_type} -> " + ", ".join(_type(graph, o) for o in outs)]
        n_const = sum(1 for v in node.inputs if v in graph.values and graph.values[v].is_const)
        tip += [f"{n_const} constant input(s)"] if n_const else []
        tip += [f"kernel {groups[g].kernel} ({groups[g].kind})" + f": {groups[g].expression}" * bool(groups[g].expression)
                for g in gis] or ["no kernel (view or folded)"]
        stroke, fill = colors[gis[0]] if gis else ("#9a9a9a", "#f2f2f2")
        badge = _badge(groups[gis[0]].kernel, lay.w[i], stroke) if gis and members[gis[0]][0] == i else ""
        extra = f' data-g="{" ".join(map(str, gis))}"' if gis else ""
        out.append(_box(lay, i, "node" if gis else "node view", "\n".join(tip), node.op_type,
                        _shape(graph.values.get(outs[0])) if outs else "", fill, stroke, extra, badge=badge))
    out.append("</svg>")
    return "\n".join(out)


_PAGE_STYLE = """body{margin:0;font:13px Helvetica,Arial,sans-serif;color:#222;display:flex;flex-direction:column;height:100vh}
header{padding:8px 14px;border-bottom:1px solid #ddd;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
h1{font-size:17px;margin:0}button{font-size:13px;min-width:30px}small{color:#777}
.legend{display:flex;gap:14px;align-items:center;color:#444;font-size:12px;flex-wrap:wrap}
.sw{display:inline-block;width:14px;height:11px;border:1.5px solid;border-radius:3px;vertical-align:middle;margin-right:4px}
main{flex:1;display:flex;min-height:0}#view{flex:1;overflow:auto;background:#fafafa}#view svg{display:block;margin:0 auto}
aside{width:470px;border-left:1px solid #ddd;display:flex;flex-direction:column;min-height:0}
#info{padding:8px 10px;border-bottom:1px solid #ddd;white-space:pre-wrap;font:11px monospace;min-height:48px;max-height:150px;overflow:auto}
.tbl{overflow:auto;flex:1}table{border-collapse:collapse;width:100%;font-size:12px}
th{position:sticky;top:0;background:#f0f0f0;text-align:left}td,th{padding:3px 6px;border-bottom:1px solid #eee;vertical-align:top}
tr[data-g]{cursor:pointer}tr.on{background:#fff4c2}td.ex{font:11px monospace;max-width:150px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.node{cursor:pointer}"""

_PAGE_SCRIPT = """(function(){
var svg=document.querySelector('#view svg'),view=document.getElementById('view'),info=document.getElementById('info');
var W=+svg.getAttribute('width'),H=+svg.getAttribute('height'),z=1,pinned=null;
function zoom(nz){var cx=(view.scrollLeft+view.clientWidth/2)/z,cy=(view.scrollTop+view.clientHeight/2)/z;
z=Math.max(0.03,Math.min(4,nz));svg.setAttribute('width',W*z);svg.setAttribute('height',H*z);
view.scrollLeft=cx*z-view.clientWidth/2;view.scrollTop=cy*z-view.clientHeight/2;}
document.querySelectorAll('button[data-z]').forEach(function(b){b.onclick=function(){var v=b.getAttribute('data-z');
zoom(v==='fit'?view.clientWidth/W:v==='1'?1:z*parseFloat(v));};});
view.addEventListener('wheel',function(e){if(!e.ctrlKey&&!e.metaKey)return;e.preventDefault();zoom(z*(e.deltaY<0?1.15:1/1.15));},{passive:false});
function hl(g){svg.classList.toggle('hl',g!==null);document.querySelectorAll('.on').forEach(function(e){e.classList.remove('on');});
if(g!==null)document.querySelectorAll('[data-g~="'+g+'"]').forEach(function(e){e.classList.add('on');});}
function gof(el){var d=el.getAttribute('data-g');return d?d.split(' ')[0]:null;}
document.querySelectorAll('tr[data-g]').forEach(function(r){var g=gof(r);
r.onmouseenter=function(){hl(g);};r.onmouseleave=function(){hl(pinned);};
r.onclick=function(){pinned=pinned===g?null:g;hl(pinned);var n=svg.querySelector('.node[data-g~="'+g+'"]');
if(n&&pinned!==null)n.scrollIntoView({block:'center',inline:'center',behavior:'auto'});};});
svg.querySelectorAll('.node,.io').forEach(function(n){var t=n.querySelector('title');
n.onmouseenter=function(){info.textContent=t?t.textContent:'';var g=gof(n);if(g!==null)hl(g);};
n.onmouseleave=function(){hl(pinned);};
n.onclick=function(){var g=gof(n);pinned=pinned===g?null:g;hl(pinned);var r=document.querySelector('tr[data-g="'+g+'"]');
if(r&&pinned!==null)r.scrollIntoView({block:'nearest'});};});
})();"""


def _swatch(style: str) -> str:
    return f'<span class="sw" style="{style}"></span>'


def render_html(graph, groups, *, title: str = "") -> str:
    """A standalone, offline HTML page: the SVG (zoomable), a legend and a table of the groups."""
    title = title or graph.name
    svg = render_svg(graph, groups, title=title)
    ops = {n.name: n.op_type for n in graph.nodes}
    rows = []
    for gi, g in enumerate(groups):
        counts = Counter(ops.get(n, "?") for n in g.nodes)
        op_text = ", ".join(f"{op}\u00d7{c}" if c > 1 else op for op, c in counts.items())
        rows.append(f'<tr data-g="{gi}"><td>{_swatch("background:{1};border-color:{0}".format(*_colors(gi)))}'
                    f'{esc(g.kernel)}</td><td>{esc(g.kind)}</td><td>{len(g.nodes)}</td><td>{esc(op_text)}</td>'
                    f'<td class="ex" title="{esc(g.expression)}">{esc(g.expression)}</td></tr>')
    grouped = {n for g in groups for n in g.nodes}
    kinds = ", ".join(f"{k} {c}" for k, c in sorted(Counter(g.kind for g in groups).items()))
    (s0, f0), (s1, f1) = _colors(0), _colors(1)
    legend = [_swatch(f"background:{f0};border-color:{s0}") + _swatch(f"background:{f1};border-color:{s1}")
              + "one colour per kernel, badge = kernel id", _swatch(f"background:{s0}44;border-color:transparent")
              + "shaded: nodes fused into one kernel", _swatch("background:#f2f2f2;border-style:dashed;border-color:#9a9a9a")
              + f"no kernel (view / folded): {sum(1 for n in graph.nodes if n.name not in grouped)}",
              _swatch("border-radius:6px;border-color:#333") + "graph input / output", esc(kinds)]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{esc(title)} \u2014 polyfuse</title><style>{_PAGE_STYLE}</style></head><body>\n'
            f'<header><h1>{esc(_clip(title, 80))}</h1><span>{len(graph.nodes)} nodes \u2192 {len(groups)} kernels</span>'
            '<div><button data-z="0.8" title="zoom out">\u2212</button> <button data-z="1.25" title="zoom in">+</button> '
            '<button data-z="fit">fit width</button> <button data-z="1">1:1</button> <small>ctrl + wheel zooms</small></div>'
            '<div class="legend">' + "".join(f"<span>{x}</span>" for x in legend) + '</div></header>\n'
            f'<main><div id="view">{svg[svg.index("<svg"):]}</div><aside><div id="info">hover a node for details; '
            'click a node or a row to pin its kernel</div><div class="tbl"><table><thead><tr><th>kernel</th>'
            '<th>kind</th><th>#</th><th>ops</th><th>expression</th></tr></thead><tbody>\n' + "\n".join(rows)
            + f'\n</tbody></table></div></aside></main>\n<script>{_PAGE_SCRIPT}</script></body></html>\n')


def write(path, graph, groups, *, title: str = "") -> Path:
    """Write ``render_svg`` (.svg) or ``render_html`` (.html/.htm) output to ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        text = render_svg(graph, groups, title=title)
    elif suffix in (".html", ".htm"):
        text = render_html(graph, groups, title=title)
    else:
        raise ValueError(f"{path}: cannot tell the format from the suffix; use .svg, .html or .htm")
    path.write_text(text, encoding="utf-8")
    return path
