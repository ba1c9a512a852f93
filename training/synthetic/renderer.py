"""Offscreen triangle-mesh renderer (moderngl on EGL) with exact masks and metric depth.

Why moderngl + EGL: it runs headless on the Mesa EGL that the image already has (no X
server, no apt), renders a 256x256 hand in ~2 ms including read-back, and is stable over
thousands of frames. pyrender took ~10 ms/frame and its camera is half a pixel off an OpenCV
K; Open3D hung in half of the runs (see ``docs/training.md``).

Conventions
-----------
* Vertices are in the camera optical frame in metres (x right, y down, z forward).
* ``K`` is an OpenCV/ROS intrinsics matrix: pixel centres are at integer coordinates, so a
  point projecting to ``(u, v) = (12.0, 7.0)`` lands in the centre of image pixel
  ``rgb[7, 12]``. The K-to-clip matrix below adds the half pixel that OpenGL's window
  coordinates need (GL pixel centres are at ``i + 0.5``).
* Images come back top row first (``rgb[v, u]``), no flip needed: the projection maps image
  row ``v`` to GL window row ``v`` and GL reads rows bottom-up, which is the same order.
* ``depth_m`` is the camera z (metres) of the nearest surface at each pixel centre, exact up
  to float32 (it is interpolated perspective-correctly as a vertex attribute, not recovered
  from the non-linear depth buffer); 0 where no surface. ``mask`` is 1 where any triangle
  covers the pixel centre (no anti-aliasing, so masks and depth are exact labels).
* Triangles are drawn two-sided (no culling; shading flips normals that face away), so
  meshes with holes (MANO's open wrist) and either winding render correctly.

Threads of the software rasteriser: Mesa's llvmpipe starts one rasteriser thread per core
unless ``LP_NUM_THREADS`` says otherwise. Before creating its first context the renderer sets
``LP_NUM_THREADS=0`` (rasterise in the calling thread) when the variable is not set already,
for two measured reasons: (1) forking after a context exists hung every time with the default
threads (children that then rendered never returned, 3/3 runs here) and worked every time with
``LP_NUM_THREADS=0`` (3 runs x 3 children), so ``DataLoader`` workers with the default 'fork'
start method work even when the parent rendered first; (2) in a pool of processes it costs the
least CPU in total (~2.6 vs ~3.1 ms per 256x256 hand). Set ``LP_NUM_THREADS`` yourself (before
the first render) to choose otherwise, e.g. for large images in a single process; then use
'spawn' or 'forkserver' workers.

Several renderers (e.g. different image sizes) may live in one process: each call makes its
own context current and restores the previous one. Calls on one renderer from several threads
are serialised by a lock (e.g. ROS callbacks in a multi-threaded executor).

Processes: an EGL context belongs to the process that created it. :class:`Renderer` creates
its context lazily on the first :meth:`Renderer.render` call and refuses to be used from a
forked child (the child makes its own ``Renderer``, as the synthetic dataset does in each
worker).

Example::

    from training.synthetic.renderer import Renderer, Light
    r = Renderer(256, 256)
    out = r.render(verts_cam_m, faces, K, vertex_colors=(0.8, 0.6, 0.5), light=Light())
    out.rgb, out.mask, out.depth_m   # (256,256,3) uint8, (256,256) uint8, (256,256) float32
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["Light", "RenderResult", "Renderer", "RendererError", "render", "k_to_clip",
           "vertex_normals"]

NEAR_M = 0.01
FAR_M = 100.0

_VERTEX_SHADER = """
#version 330
uniform mat4 k_to_clip;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    gl_Position = k_to_clip * vec4(in_pos, 1.0);
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_dir;      // towards the light, camera frame
uniform vec3 light_color;
uniform float ambient;
uniform float diffuse;
uniform float specular;
uniform float shininess;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
layout(location = 0) out vec4 out_color;
layout(location = 1) out float out_depth;
void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;              // two-sided lighting
    vec3 l = normalize(light_dir);
    float lambert = max(dot(n, l), 0.0);
    float spec = 0.0;
    if (lambert > 0.0) spec = pow(max(dot(n, normalize(l + view)), 0.0), shininess);
    vec3 c = v_color * light_color * (ambient + diffuse * lambert) + specular * spec * light_color;
    out_color = vec4(clamp(c, 0.0, 1.0), 1.0);
    out_depth = v_pos.z;                          // metric camera z, perspective-correct
}
"""


class RendererError(RuntimeError):
    """The renderer cannot run (no EGL, bad input, used across a fork)."""


@dataclass
class Light:
    """A directional light in the camera frame with Phong-style shading.

    ``direction_cam`` points from the surface towards the light (camera frame: x right, y down,
    z forward; the default comes from above-left of the camera). Colours are linear RGB 0..1.
    """

    direction_cam: tuple = (-0.3, -0.5, -1.0)
    color: tuple = (1.0, 1.0, 1.0)
    ambient: float = 0.35
    diffuse: float = 0.65
    specular: float = 0.08
    shininess: float = 16.0


class RenderResult(NamedTuple):
    rgb: np.ndarray      # (H, W, 3) uint8, background = ``background`` colour
    mask: np.ndarray     # (H, W) uint8, 1 = surface
    depth_m: np.ndarray  # (H, W) float32, camera z of the surface, 0 = none


def _import_triton_first() -> None:
    """Import triton (if installed) before the first EGL context.

    Measured here (torch 2.15 CUDA wheels with triton, Mesa EGL, 2026-11-25): once a Mesa EGL
    context exists, ``import triton`` segfaults the process, and torch imports triton lazily
    (``torch._dynamo``, pulled in by torchvision and by ``torch.compile``). A training process
    that renders synthetic hands before it first imports torchvision would crash. Importing
    triton first avoids it (tests/test_synthetic_renderer.py checks the order in a subprocess).
    """
    try:
        import triton  # noqa: F401
    except Exception:  # not installed (CPU-only torch) or broken: nothing to protect then
        pass


def k_to_clip(K, width: int, height: int, near: float = NEAR_M, far: float = FAR_M) -> np.ndarray:
    """4x4 matrix taking camera-frame points (x, y, z, 1) to OpenGL clip coordinates.

    With ``u = fx x/z + s y/z + cx`` (OpenCV, pixel centres at integers) the GL window
    coordinate is ``u + 0.5`` and NDC is ``2 (u + 0.5) / W - 1``; multiplying by ``w_clip = z``
    gives the linear rows below. Rows map image row ``v`` to window row ``v`` (y not flipped).
    Depth uses the usual near/far mapping (only for the z-test).
    """
    K = np.asarray(K, dtype=np.float64)
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    W, H = float(width), float(height)
    P = np.zeros((4, 4))
    P[0] = [2 * fx / W, 2 * s / W, 2 * (cx + 0.5) / W - 1.0, 0.0]
    P[1] = [0.0, 2 * fy / H, 2 * (cy + 0.5) / H - 1.0, 0.0]
    P[2] = [0.0, 0.0, (far + near) / (far - near), -2.0 * far * near / (far - near)]
    P[3] = [0.0, 0.0, 1.0, 0.0]
    return P


def _incidence(faces: np.ndarray, n_verts: int):
    """Sparse (V, F) matrix summing face normals into vertex normals."""
    from scipy.sparse import csr_matrix

    f = np.asarray(faces).reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return csr_matrix((np.ones(len(f), np.float32), (f, cols)), shape=(n_verts, len(faces)))


def vertex_normals(verts: np.ndarray, faces: np.ndarray, incidence=None) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32 (zero vectors where undefined).

    ``incidence``: optional cached ``_incidence(faces, V)`` (the renderer keeps one per mesh).
    """
    v = np.asarray(verts, np.float32)
    f = np.asarray(faces)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if incidence is None:
        incidence = _incidence(f, len(v))
    n = np.asarray(incidence @ fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(norm, 1e-20)).astype(np.float32)


def _check_inputs(verts, faces, K, width, height):
    verts = np.asarray(verts, dtype=np.float32)
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) == 0:
        raise RendererError(f"verts_cam_m must be (V, 3) with V > 0, got {verts.shape}")
    if not np.all(np.isfinite(verts)):
        raise RendererError("verts_cam_m contains NaN or inf")
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise RendererError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(verts)):
        raise RendererError(f"faces index vertices outside [0, {len(verts)})")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise RendererError(f"K must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}")
    if int(width) <= 0 or int(height) <= 0:
        raise RendererError(f"image size must be positive, got {width}x{height}")
    return verts, faces.astype(np.uint32), K


class Renderer:
    """Keeps one EGL context and framebuffer of a fixed size; call :meth:`render` per mesh.

    The context is created lazily on the first render, in the calling process. Reuse one
    ``Renderer`` for many frames (creating a context costs ~20-50 ms); :meth:`release` frees it.
    """

    def __init__(self, width: int = 256, height: int = 256):
        if int(width) <= 0 or int(height) <= 0:
            raise RendererError(f"image size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self._lock = threading.Lock()  # one render at a time (an EGL context is current in one thread)
        self._ctx = None
        self._pid = None
        self._vbo_bytes = 0
        self._ibo_key = None

    # ------------------------------------------------------------------ context
    def _ensure_context(self):
        if self._ctx is not None:
            if self._pid != os.getpid():
                raise RendererError(
                    "this Renderer's EGL context was created in another process: create a "
                    "Renderer inside the worker (a forked child cannot use its parent's context)")
            return
        try:
            import moderngl
        except ImportError as err:  # pragma: no cover - dependency is in install_requires
            raise RendererError("moderngl is not installed (pip install moderngl)") from err
        os.environ.setdefault("LP_NUM_THREADS", "0")  # see "Threads" in the module docstring
        _import_triton_first()
        try:
            ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as err:  # moderngl raises plain Exception for EGL failures
            raise RendererError(
                f"cannot create an EGL OpenGL context ({err}); the renderer needs EGL "
                "(Mesa libEGL, e.g. apt libegl1 libgl1-mesa-dri)") from err
        self._ctx, self._pid = ctx, os.getpid()
        self._prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        size = (self.width, self.height)
        self._color_rb = ctx.renderbuffer(size, 4)
        self._depth_rb = ctx.renderbuffer(size, 1, dtype="f4")
        self._zbuf = ctx.depth_renderbuffer(size)
        self._fbo = ctx.framebuffer(color_attachments=[self._color_rb, self._depth_rb],
                                    depth_attachment=self._zbuf)
        self._vbo = None
        self._ibo = None
        self._vao = None

    def release(self):
        """Free the GL objects and the context (safe to call twice)."""
        if self._ctx is not None and self._pid == os.getpid():
            self._ctx.release()
        self._ctx = None
        self._vao = self._vbo = self._ibo = None
        self._vbo_bytes = 0
        self._ibo_key = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __getstate__(self):  # a Renderer can be pickled into spawn workers; the context is not
        return {"width": self.width, "height": self.height}

    def __setstate__(self, state):
        self.__init__(state["width"], state["height"])

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def _faces_key(faces: np.ndarray, n_verts: int):
        return (faces.shape, n_verts, hash(faces.tobytes()))

    def _normals(self, verts, faces):
        key = self._faces_key(faces, len(verts))
        if getattr(self, "_inc_key", None) != key:
            self._inc, self._inc_key = _incidence(faces, len(verts)), key
        return vertex_normals(verts, faces, self._inc)

    def _upload(self, data: np.ndarray, faces: np.ndarray):
        ctx = self._ctx
        rebuild = False
        if data.nbytes > self._vbo_bytes:
            if self._vbo is not None:
                self._vbo.release()
            self._vbo_bytes = max(data.nbytes, 2 * self._vbo_bytes)
            self._vbo = ctx.buffer(reserve=self._vbo_bytes)
            rebuild = True
        self._vbo.write(data.tobytes())
        key = self._faces_key(faces, len(data))
        if key != self._ibo_key:
            if self._ibo is not None:
                self._ibo.release()
            self._ibo = ctx.buffer(faces.tobytes())
            self._ibo_key = key
            rebuild = True
        if rebuild or self._vao is None:
            if self._vao is not None:
                self._vao.release()
            self._vao = ctx.vertex_array(
                self._prog, [(self._vbo, "3f 3f 3f", "in_pos", "in_normal", "in_color")],
                index_buffer=self._ibo, index_element_size=4)

    def render(self, verts_cam_m, faces, K, vertex_colors=(0.85, 0.65, 0.55),
               light: Light | None = None, background=(0, 0, 0), normals=None) -> RenderResult:
        """Render one mesh.

        Args:
            verts_cam_m: (V, 3) vertices, metres, camera optical frame.
            faces: (F, 3) integer triangle indices.
            K: (3, 3) OpenCV intrinsics in pixels for an image of this renderer's size.
            vertex_colors: (V, 3) or one (3,) RGB colour, floats 0..1 (uint8 0..255 accepted).
            light: :class:`Light` (default: a soft light from above-left).
            background: RGB 0..255 of pixels without surface.
            normals: optional (V, 3) vertex normals (default: area-weighted from the mesh).

        Returns :class:`RenderResult` (rgb uint8 (H,W,3), mask uint8 (H,W), depth_m float32 (H,W)).
        """
        verts, faces, K = _check_inputs(verts_cam_m, faces, K, self.width, self.height)
        with self._lock:
            self._ensure_context()
            with self._ctx:  # make OUR context current: a process may hold several renderers
                return self._render_current(verts, faces, K, vertex_colors, light, background, normals)

    def _render_current(self, verts, faces, K, vertex_colors, light, background, normals) -> RenderResult:
        light = light or Light()
        colors = np.asarray(vertex_colors)
        if colors.dtype == np.uint8:
            colors = colors.astype(np.float32) / 255.0
        colors = np.broadcast_to(np.asarray(colors, np.float32), verts.shape)
        if normals is None:
            normals = self._normals(verts, faces)
        data = np.concatenate([verts, np.asarray(normals, np.float32), colors], axis=1)
        data = np.ascontiguousarray(data, dtype=np.float32)
        self._upload(data, np.ascontiguousarray(faces))

        prog = self._prog
        prog["k_to_clip"].write(k_to_clip(K, self.width, self.height).T.astype("f4").tobytes())
        prog["light_dir"].value = tuple(float(x) for x in light.direction_cam)
        prog["light_color"].value = tuple(float(x) for x in light.color)
        prog["ambient"].value = float(light.ambient)
        prog["diffuse"].value = float(light.diffuse)
        prog["specular"].value = float(light.specular)
        prog["shininess"].value = float(light.shininess)

        ctx, fbo = self._ctx, self._fbo
        fbo.use()
        ctx.viewport = (0, 0, self.width, self.height)
        ctx.disable(ctx.CULL_FACE)
        ctx.enable(ctx.DEPTH_TEST)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self._vao.render(mode=ctx.TRIANGLES, vertices=faces.size)

        H, W = self.height, self.width
        rgb = np.frombuffer(fbo.read(components=3, attachment=0, alignment=1), np.uint8)
        rgb = rgb.reshape(H, W, 3).copy()
        depth = np.frombuffer(fbo.read(components=1, attachment=1, dtype="f4", alignment=1),
                              np.float32).reshape(H, W).copy()
        mask = (depth > 0).astype(np.uint8)  # surfaces are beyond the near plane (z > 0.01 m)
        bg = np.asarray(background, np.uint8)
        if np.any(bg):
            rgb[mask == 0] = bg
        return RenderResult(rgb, mask, depth)


    def render_batch(self, verts_cam_m, faces, K, vertex_colors=(0.85, 0.65, 0.55),
                     light: Light | None = None, background=(0, 0, 0)) -> RenderResult:
        """Render B meshes that share ``faces``: ``verts_cam_m`` (B, V, 3), ``K`` (3, 3) or
        (B, 3, 3), ``vertex_colors`` one colour, (V, 3) or (B, V, 3). Returns a
        :class:`RenderResult` of stacked arrays: rgb (B, H, W, 3), mask (B, H, W),
        depth_m (B, H, W). One draw per mesh on the same context (no extra set-up per call)."""
        verts = np.asarray(verts_cam_m)
        if verts.ndim != 3 or verts.shape[-1] != 3:
            raise RendererError(f"verts_cam_m must be (B, V, 3), got {verts.shape}")
        B = len(verts)
        Ks = np.asarray(K, np.float64)
        Ks = np.broadcast_to(Ks, (B, 3, 3)) if Ks.shape == (3, 3) else Ks
        if Ks.shape != (B, 3, 3):
            raise RendererError(f"K must be (3, 3) or ({B}, 3, 3), got {np.shape(K)}")
        colors = np.asarray(vertex_colors)
        per_mesh = colors.ndim == 3
        if per_mesh and len(colors) != B:
            raise RendererError(f"vertex_colors must have {B} entries, got {len(colors)}")
        outs = [self.render(verts[b], faces, Ks[b], colors[b] if per_mesh else colors, light, background)
                for b in range(B)]
        return RenderResult(np.stack([o.rgb for o in outs]), np.stack([o.mask for o in outs]),
                            np.stack([o.depth_m for o in outs]))


_RENDERERS: dict = {}


def render(verts_cam_m, faces, K, width: int, height: int, vertex_colors=(0.85, 0.65, 0.55),
           light: Light | None = None, background=(0, 0, 0)) -> RenderResult:
    """One-call rendering with a per-process cached :class:`Renderer` for each image size.

    Same arguments and result as :meth:`Renderer.render` plus the image size.
    """
    key = (os.getpid(), int(width), int(height))
    r = _RENDERERS.get(key)
    if r is None:
        r = _RENDERERS[key] = Renderer(width, height)
    return r.render(verts_cam_m, faces, K, vertex_colors=vertex_colors, light=light,
                    background=background)
