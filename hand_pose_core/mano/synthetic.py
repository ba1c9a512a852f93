"""A deterministic, licence-free model in the exact MANO file layout, for tests and demos.

The real MANO model is licensed by MPI and cannot ship with the project. This module builds a
stand-in with the same key layout, shapes and conventions (see :mod:`hand_pose_core.mano.io`):

* mesh: 778 vertices, 1538 triangles, disk topology with a 16-vertex open wrist (Euler:
  F = 2V - 2 - b = 1538); a palm tube plus five capped finger tubes joined by web triangles;
  consistently oriented with outward normals.
* metres, MANO's rest-pose frame for the right hand: wrist near (0.095, 0.006, 0.006), fingers
  along -x, thumb towards +z, palm facing -y; hand length (wrist to middle tip) ~0.18 m.
  Finger flexion is then mostly a positive rotation about +z (right hand).
* MANO's 16-joint tree (wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3), a
  ``J_regressor`` whose rows are convex vertex combinations (sum 1) that define the joints,
  smooth skinning weights (rows sum 1), 10 small smooth shape blend shapes (``beta[0]``
  scales the hand about the wrist, +1 = 6 % larger), small pose blend shapes, an orthonormal
  45x45 PCA basis (component 0 = curl all fingers) and a small ``hands_mean``.
* fingertip vertices sit at the ids of all presets (manopth, smplx, FreiHAND; see
  :data:`hand_pose_core.mano.layer.TIP_VERTEX_PRESETS`): the manopth id is the exact tip.
* the left model is the exact mirror (x negated, faces flipped, poses mirrored) but, like the
  official ``MANO_LEFT.pkl``, it is returned *with* the known sign error in
  ``shapedirs[:, 0, :]`` when ``with_official_left_bug=True`` so loaders can test the fix.

Shapes and poses are synthetic: good for exercising code, not for measuring accuracy.
"""
from __future__ import annotations

import numpy as np

from hand_pose_core.mano.io import MANO_PARENTS, validate_mano

__all__ = ["synthetic_mano", "mirror_pose_aa", "MIRROR_POSE_SIGNS"]

# Wrist position and axes of the local frame (a: along fingers, b: towards thumb,
# c: palmar) expressed in MANO's right-hand rest frame.
_WRIST = np.array([0.095, 0.006, 0.006])
_A2XYZ = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # columns: a, b, c

# Mirroring a hand through the x=0 plane maps a rotation R to M R M (M = diag(-1, 1, 1)),
# i.e. axis-angle (x, y, z) -> (x, -y, -z).
MIRROR_POSE_SIGNS = np.array([1.0, -1.0, -1.0])

_RESERVED_TIPS = {  # finger -> (exact tip id (manopth right), other preset ids near the tip)
    "thumb": (745, (744,)),
    "index": (317, (320,)),
    "middle": (444, (443, 445)),
    "ring": (556, (554, 555)),
    "pinky": (673, (671, 672)),
}


def mirror_pose_aa(pose_aa: np.ndarray) -> np.ndarray:
    """Mirror axis-angle poses ``[..., 3k]`` between right and left hands."""
    p = np.asarray(pose_aa, dtype=np.float64)
    return (p.reshape(p.shape[:-1] + (-1, 3)) * MIRROR_POSE_SIGNS).reshape(p.shape)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _normalize(a), _normalize(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -0.999999:
        raise ValueError("opposite vectors")
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1.0 + c)


class _MeshBuilder:
    def __init__(self):
        self.verts: list[np.ndarray] = []
        self.faces: list[tuple[int, int, int]] = []

    def add(self, p) -> int:
        self.verts.append(np.asarray(p, dtype=np.float64))
        return len(self.verts) - 1

    def tri(self, a, b, c):
        self.faces.append((a, b, c))

    def quad(self, a, b, c, d, centre: bool = False):
        """Quad with loop order a->b->c->d."""
        if centre:
            m = self.add(np.mean([self.verts[i] for i in (a, b, c, d)], axis=0))
            for u, v in ((a, b), (b, c), (c, d), (d, a)):
                self.tri(u, v, m)
        else:
            self.tri(a, b, c)
            self.tri(a, c, d)

    def band(self, L, N, skip=(), centres=()):
        """Tube band between equal rings L and N (uses L forward, N backward)."""
        n = len(L)
        for k in range(n):
            if k in skip:
                continue
            k1 = (k + 1) % n
            self.quad(L[k], L[k1], N[k1], N[k], centre=k in centres)


def _palm_point(a: float, s: float, palmar: bool) -> np.ndarray:
    """Palm surface point at height ``a`` (m from wrist), width fraction ``s`` (0 pinky side)."""
    t = np.clip(a / 0.095, 0.0, 1.0)
    b_lo = -0.030 + (-0.038 + 0.030) * t
    b_hi = 0.018 + (0.052 - 0.018) * t
    h = 0.011 + 0.004 * np.sin(np.pi * t)  # half thickness
    g = 0.35 + 0.65 * np.sqrt(max(0.0, 1.0 - (2 * s - 1) ** 2))
    return np.array([a, b_lo + s * (b_hi - b_lo), (h if palmar else -h) * g])


def _top_a(s: float) -> float:
    # Knuckle line (pinky, ring, middle, index centres): the pinky MCP is lowest.
    return float(np.interp(s, (0.125, 0.375, 0.625, 0.875), (0.081, 0.096, 0.099, 0.094)))


# Finger geometry in the local frame: splay (b per unit a), segment lengths (m), radii.
_FINGERS = {
    "pinky": dict(col=0, splay=-0.15, lengths=(0.025, 0.020, 0.019),
                  radius=(0.0080, 0.0066), rings=10),
    "ring": dict(col=1, splay=-0.06, lengths=(0.033, 0.025, 0.022),
                 radius=(0.0090, 0.0076), rings=10),
    "middle": dict(col=2, splay=0.01, lengths=(0.037, 0.027, 0.022),
                   radius=(0.0095, 0.0080), rings=11),
    "index": dict(col=3, splay=0.08, lengths=(0.032, 0.021, 0.022),
                  radius=(0.0092, 0.0078), rings=11),
}
# Thumb: bone directions (local frame) and lengths from the CMC (centre of its opening on the
# palmar side of the palm) to MCP, IP and tip.
_THUMB = dict(
    dirs=((0.55, 0.65, 0.5), (0.75, 0.6, 0.2), (0.8, 0.55, 0.1)),
    lengths=(0.036, 0.032, 0.030),
    radius=(0.0105, 0.0085), rings=10,
)
_PALM_RINGS = 10
_HOLE_RING = 1  # thumb opening spans palm rings 1..3, palmar side next to the index edge


def _tube(mb: _MeshBuilder, base, path: np.ndarray, n_rings: int, radius, tip_gap=0.006):
    """Extrude a capped tube from loop ``base`` along polyline ``path`` (first point = start).

    Returns the ring id lists, the arc lengths of the rings, the cap ids and the apex id.
    """
    P = np.array([mb.verts[i] for i in base])
    centre = P.mean(0)
    off = P - centre
    seg = np.diff(path, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    total = cum[-1]

    def at(s):
        i = min(np.searchsorted(cum, s, side="right") - 1, len(seg) - 1)
        f = (s - cum[i]) / seg_len[i]
        # Tangent blended with the next segment near joints for smooth rings.
        t = seg[i] / seg_len[i]
        return path[i] + f * seg[i], t

    n0 = np.linalg.svd(off)[2][-1]
    if n0 @ (path[1] - path[0]) < 0:
        n0 = -n0
    rings, arcs = [], []
    prev = list(base)
    stops = np.linspace(0, total - tip_gap, n_rings + 1)[1:]
    for s in stops:
        c, t = at(s)
        R = _rot_between(n0, t)
        u = off @ R.T
        u = _normalize(u - (u @ t)[:, None] * t)
        r = radius[0] + (radius[1] - radius[0]) * s / total
        ring = [mb.add(c + r * uk) for uk in u]
        mb.band(prev, ring)
        prev = ring
        rings.append(ring)
        arcs.append(s)
    # Cap: 8 -> 4 ring, then a fan to the apex (the fingertip vertex).
    c, t = at(total - 0.45 * tip_gap)
    R = _rot_between(n0, t)
    u = off @ R.T
    u = _normalize(u - (u @ t)[:, None] * t)
    cap = [mb.add(c + 0.6 * radius[1] * u[2 * i]) for i in range(4)]
    L = prev
    for i in range(4):
        i1 = (i + 1) % 4
        mb.tri(L[2 * i], L[2 * i + 1], cap[i])
        mb.tri(L[2 * i + 1], L[(2 * i + 2) % 8], cap[i1])
        mb.tri(L[2 * i + 1], cap[i1], cap[i])
    apex = mb.add(path[-1])
    for i in range(4):
        mb.tri(cap[i], cap[(i + 1) % 4], apex)
    return rings, np.array(arcs), cap, apex, total


def _ring_interp_row(n_verts, rings, arcs, s, base=None) -> np.ndarray:
    """Regressor row: centroid of the tube at arc length ``s`` (linear between rings)."""
    all_rings = ([base] if base is not None else []) + list(rings)
    all_arcs = ([0.0] if base is not None else []) + list(arcs)
    row = np.zeros(n_verts)
    i = int(np.clip(np.searchsorted(all_arcs, s) - 1, 0, len(all_arcs) - 2))
    f = float(np.clip((s - all_arcs[i]) / (all_arcs[i + 1] - all_arcs[i]), 0, 1))
    for w, ring in ((1 - f, all_rings[i]), (f, all_rings[i + 1])):
        row[list(ring)] += w / len(ring)
    return row


def _build_right_geometry():
    mb = _MeshBuilder()
    # Wrist boundary ring (16): palmar s-increasing, then dorsal s-decreasing.
    s8 = (np.arange(8) + 0.5) / 8
    wrist = [mb.add(_palm_point(0.0, s, True)) for s in s8]
    wrist += [mb.add(_palm_point(0.0, s, False)) for s in s8[::-1]]
    s16 = (np.arange(16) + 0.5) / 16
    palm = []
    for i in range(_PALM_RINGS):
        f = i / (_PALM_RINGS - 1)
        pal = [mb.add(_palm_point(0.008 + f * (_top_a(s) - 0.008), s, True)) for s in s16]
        dor = [mb.add(_palm_point(0.008 + f * (_top_a(s) - 0.008), s, False)) for s in s16[::-1]]
        palm.append(pal + dor)
    N0 = palm[0]
    for i in range(16):  # 16 -> 32 transition
        W0, W1 = wrist[i], wrist[(i + 1) % 16]
        mb.tri(W0, N0[2 * i + 1], N0[2 * i])
        mb.tri(W0, W1, N0[2 * i + 1])
        mb.tri(W1, N0[(2 * i + 2) % 32], N0[2 * i + 1])
    hole_skip = (13, 14)
    for i in range(_PALM_RINGS - 1):
        skip = hole_skip if i in (_HOLE_RING, _HOLE_RING + 1) else ()
        centres = {4: (24,), 6: (26,)}.get(i, ())  # two extra vertices to reach V = 778
        mb.band(palm[i], palm[i + 1], skip=skip, centres=centres)
    top = palm[-1]
    # Webs between neighbouring fingers (loop p3 -> p4 -> d4 -> d3).
    for j in range(3):
        p3, p4 = top[4 * j + 3], top[4 * j + 4]
        d3, d4 = top[31 - (4 * j + 3)], top[31 - (4 * j + 4)]
        mb.quad(p3, p4, d4, d3)

    rows: dict[int, np.ndarray] = {}
    tips: dict[str, tuple[int, list[int]]] = {}
    mano_ids = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12)}
    finger_data = {}
    for name, fd in _FINGERS.items():
        j = fd["col"]
        base = [top[4 * j + k] for k in range(4)] + [top[31 - (4 * j + k)] for k in (3, 2, 1, 0)]
        mcp = np.mean([mb.verts[i] for i in base], axis=0)
        d = _normalize(np.array([1.0, fd["splay"], 0.0]))
        L1, L2, L3 = fd["lengths"]
        path = np.array([mcp, mcp + L1 * d, mcp + (L1 + L2) * d, mcp + (L1 + L2 + L3) * d])
        rings, arcs, cap, apex, total = _tube(mb, base, path, fd["rings"], fd["radius"])
        finger_data[name] = (base, rings, arcs, (0.0, L1, L1 + L2), cap, apex)
    # Thumb from the hole in the palm wall.
    r = _HOLE_RING
    hole = [palm[r][13], palm[r][14], palm[r][15], palm[r + 1][15],
            palm[r + 2][15], palm[r + 2][14], palm[r + 2][13], palm[r + 1][13]]
    # Orientation: the palm faces use each hole edge once; the tube must use it reversed.
    used = {(a, b) for f in mb.faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    if (hole[0], hole[1]) in used:
        hole = hole[::-1]
    hc = np.mean([mb.verts[i] for i in hole], axis=0)
    tpath = [hc]
    for d, length in zip(_THUMB["dirs"], _THUMB["lengths"]):
        tpath.append(tpath[-1] + length * _normalize(np.array(d)))
    tpath = np.array(tpath)
    tmcp, tip_ = tpath[1], tpath[2]
    trings, tarcs, tcap, tapex, ttotal = _tube(mb, hole, tpath, _THUMB["rings"], _THUMB["radius"])
    l_mcp = np.linalg.norm(tmcp - hc)
    finger_data["thumb"] = (hole, trings, tarcs, (None, l_mcp, l_mcp + np.linalg.norm(tip_ - tmcp)),
                            tcap, tapex)

    V = len(mb.verts)
    rows[0] = np.zeros(V)
    rows[0][wrist] = 1.0 / 16
    for name, ids in mano_ids.items():
        base, rings, arcs, jarcs, _, _ = finger_data[name]
        for jid, s in zip(ids, jarcs):
            rows[jid] = _ring_interp_row(V, rings, arcs, s, base=base)
    hole, trings, tarcs, jarcs, _, _ = finger_data["thumb"]
    cmc = np.zeros(V)
    cmc[hole] += 1.0 / 8
    rows[13] = cmc
    rows[14] = _ring_interp_row(V, trings, tarcs, jarcs[1], base=hole)
    rows[15] = _ring_interp_row(V, trings, tarcs, jarcs[2], base=hole)
    J = np.stack([rows[i] for i in range(16)])
    for name in ("thumb", "index", "middle", "ring", "pinky"):
        _, _, _, _, cap, apex = finger_data[name]
        tips[name] = (apex, cap)
    return np.array(mb.verts), np.array(mb.faces, dtype=np.int64), J, tips


def _compact_and_reserve(verts, faces, J, tips):
    """Drop unused vertices and renumber so the fingertip vertices get the preset ids."""
    used = np.unique(faces)
    if len(used) != 778:
        raise AssertionError(f"synthetic mesh has {len(used)} used vertices, expected 778")
    order = np.full(len(verts), -1)
    new_of_old = {}
    reserved_new = set()
    for name, (exact, others) in _RESERVED_TIPS.items():
        apex, cap = tips[name]
        new_of_old[apex] = exact
        reserved_new.add(exact)
        for k, nid in enumerate(others):
            new_of_old[cap[k]] = nid
            reserved_new.add(nid)
    free = iter(i for i in range(778) if i not in reserved_new)
    for old in used:
        order[old] = new_of_old[old] if old in new_of_old else next(free)
    new_verts = np.zeros((778, 3))
    new_verts[order[used]] = verts[used]
    new_J = np.zeros((16, 778))
    new_J[:, order[used]] = J[:, used]
    return new_verts, order[faces], new_J


def _skinning_weights(v: np.ndarray, joints: np.ndarray, tip_pos: dict) -> np.ndarray:
    """Soft assignment to the nearest bones (segment joint -> child), softmax over -d^2."""
    def seg_dist(p, a, b):
        ab = b - a
        t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
        return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)

    child = {1: 2, 2: 3, 3: "index", 4: 5, 5: 6, 6: "middle", 7: 8, 8: 9, 9: "pinky",
             10: 11, 11: 12, 12: "ring", 13: 14, 14: 15, 15: "thumb"}
    d = np.zeros((len(v), 16))
    d[:, 0] = np.min([seg_dist(v, joints[0], joints[k]) for k in (1, 4, 7, 10, 13)], axis=0)
    for j, c in child.items():
        end = tip_pos[c] if isinstance(c, str) else joints[c]
        d[:, j] = seg_dist(v, joints[j], end)
    # The palm (root) wins over the proximal finger bones below the knuckles.
    sigma = 0.0045
    logits = -(d / sigma) ** 2
    logits -= logits.max(1, keepdims=True)
    w = np.exp(logits)
    w[w / w.sum(1, keepdims=True) < 1e-3] = 0.0
    return w / w.sum(1, keepdims=True)


def _right_model(seed: int) -> dict:
    verts_l, faces, J, tips = _build_right_geometry()
    verts_l, faces, J = _compact_and_reserve(verts_l, faces, J, tips)
    v = _WRIST + verts_l @ _A2XYZ.T  # local frame -> MANO frame (metres)
    # Outward orientation: signed volume about the wrist opening must be positive.
    o = v[faces] - v[faces].mean((0, 1))
    vol = np.einsum("fi,fi->f", o[:, 0], np.cross(o[:, 1], o[:, 2])).sum() / 6
    if vol < 0:
        faces = faces[:, [0, 2, 1]]
    joints = J @ v
    tip_ids = {k: e for k, (e, _) in _RESERVED_TIPS.items()}
    W = _skinning_weights(v, joints, {k: v[i] for k, i in tip_ids.items()})

    rng = np.random.default_rng(seed)
    e_a, e_b, e_c = _A2XYZ.T  # unit directions of the local axes in MANO coordinates
    rel = v - joints[0]
    a = rel @ e_a
    shapedirs = np.zeros((778, 3, 10))
    shapedirs[:, :, 0] = 0.06 * rel  # overall size
    shapedirs[:, :, 1] = 0.05 * np.maximum(a - 0.08, 0)[:, None] * e_a  # finger length
    shapedirs[:, :, 2] = 0.08 * (rel @ e_b)[:, None] * e_b  # palm width
    shapedirs[:, :, 3] = 0.10 * (rel @ e_c)[:, None] * e_c  # thickness
    p = rel / 0.1
    feats = np.stack([p[:, 0], p[:, 1], p[:, 2], p[:, 0] ** 2, p[:, 1] ** 2, p[:, 2] ** 2,
                      p[:, 0] * p[:, 1], p[:, 0] * p[:, 2], p[:, 1] * p[:, 2]], 1)
    for k in range(4, 10):
        shapedirs[:, :, k] = 0.0015 * feats @ rng.normal(size=(9, 3)) / 3.0

    coef = rng.normal(size=(15, 9, 3))
    posedirs = 0.003 * np.einsum("vj,jed->vdje", W[:, 1:], coef).reshape(778, 3, 135)

    # PCA basis: component 0 curls all fingers (+z), component 1 spreads them (about y).
    c0 = np.zeros((15, 3))
    c0[:12, 2] = 1.0
    c0[12:, :] = (0.3, 0.2, 0.6)
    c1 = np.zeros((15, 3))
    c1[[0, 3, 6, 9], 1] = (0.5, 0.1, -0.6, -0.3)
    M = np.concatenate([c0.reshape(45, 1), c1.reshape(45, 1), rng.normal(size=(45, 43))], 1)
    Q, R = np.linalg.qr(M)
    Q = Q * np.sign(np.diag(R))  # first columns keep the direction of c0, c1
    hands_components = Q.T.copy()
    hands_mean = np.zeros((15, 3))
    hands_mean[:12, 2] = 0.15
    hands_mean += 0.03 * rng.normal(size=(15, 3))

    kintree = np.array([[4294967295] + list(MANO_PARENTS[1:]), list(range(16))], dtype=np.int64)
    return {
        "v_template": v,
        "f": faces.astype(np.int64),
        "J_regressor": J,
        "weights": W,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "kintree_table": kintree,
        "hands_components": hands_components,
        "hands_mean": hands_mean.reshape(45),
        "side": "right",
    }


def _mirror(model: dict, with_official_left_bug: bool) -> dict:
    m = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in model.items()}
    flip = np.array([-1.0, 1.0, 1.0])
    m["v_template"] = model["v_template"] * flip
    m["f"] = model["f"][:, [0, 2, 1]].copy()
    m["shapedirs"] = model["shapedirs"] * flip[None, :, None]
    if with_official_left_bug:
        m["shapedirs"][:, 0, :] *= -1.0  # what the official MANO_LEFT.pkl ships
    elem = np.outer(flip, flip).reshape(9)  # sign of each element of M (R - I) M
    m["posedirs"] = (
        model["posedirs"].reshape(778, 3, 15, 9) * flip[None, :, None, None] * elem
    ).reshape(778, 3, 135)
    m["hands_components"] = mirror_pose_aa(model["hands_components"])
    m["hands_mean"] = mirror_pose_aa(model["hands_mean"])
    m["side"] = "left"
    return m


def synthetic_mano(side: str = "right", seed: int = 0, *, with_official_left_bug: bool = False
                   ) -> dict:
    """Build the synthetic MANO-format model (numpy arrays, metres, official key layout).

    Args:
        side: 'right' or 'left' (the left model mirrors the right one exactly).
        seed: seeds the small random parts (shape/pose blend shapes, PCA completion).
        with_official_left_bug: for ``side='left'``, return ``shapedirs`` with the x sign error
            of the official ``MANO_LEFT.pkl`` (write it with ``write_mano_pkl`` to exercise
            :func:`~hand_pose_core.mano.io.load_mano`'s fix). Default: correct values, ready
            for :class:`~hand_pose_core.mano.layer.ManoLayer`.
    """
    side = str(side).lower()
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    key = (seed,)
    if key not in _CACHE:
        _CACHE[key] = _right_model(seed)
    right = _CACHE[key]
    model = right if side == "right" else _mirror(right, with_official_left_bug)
    out = validate_mano(model, "synthetic_mano")
    out["side"] = side
    return out


_CACHE: dict = {}
