"""The inference pipeline: palm anchors and decoding, ROI crops, landmark un-projection,
handedness, metric 3D placement, smoothing, and :class:`.estimator.HandPoseEstimator`.

Import submodules directly (``from hand_pose_core.pipeline.estimator import
HandPoseEstimator``); this package imports nothing heavy on its own.
"""
