"""Chumpy-free MANO: safe model loading, a synthetic MANO-format model, the layer, mesh export
and the joint-to-MANO fitter.

Units: model files and :func:`load_mano` / :func:`synthetic_mano` are in metres; the
:class:`ManoLayer` outputs millimetres (manopth compatible); the fitter takes and returns metres.
"""
from hand_pose_core.mano.io import (
    MANO_PARENTS,
    MANO_SHAPES,
    load_mano,
    resolve_mano_path,
    save_mano_npz,
    validate_mano,
    write_mano_pkl,
)
from hand_pose_core.mano.fit import ManoFitResult, ManoFitter, ManoParams
from hand_pose_core.mano.layer import (
    MANO_TO_CANONICAL,
    TIP_VERTEX_PRESETS,
    ManoLayer,
    resolve_tip_vertex_ids,
)
from hand_pose_core.mano.mesh_io import export_mesh
from hand_pose_core.mano.synthetic import mirror_pose_aa, synthetic_mano

__all__ = [
    "MANO_PARENTS",
    "MANO_SHAPES",
    "MANO_TO_CANONICAL",
    "TIP_VERTEX_PRESETS",
    "ManoFitResult",
    "ManoFitter",
    "ManoLayer",
    "ManoParams",
    "export_mesh",
    "load_mano",
    "mirror_pose_aa",
    "resolve_mano_path",
    "resolve_tip_vertex_ids",
    "save_mano_npz",
    "synthetic_mano",
    "validate_mano",
    "write_mano_pkl",
]
