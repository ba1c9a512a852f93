"""Hand kinematics: joint-order maps, rotation conversions, forward/inverse kinematics.

Submodules are imported lazily by their users (``from hand_pose_core.kinematics.joint_maps
import convert_joints``) so that numpy-only code does not pay for importing torch.
"""
