"""ament_python package setup: installs hand_pose_core, hand_pose_ros and training, plus
launch/ and config/ into share/hand_pose_ros with the ament resource marker."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hand_pose_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    # torch/torchvision are installed as a matched pair by scripts/bootstrap.sh (see README);
    # rclpy comes from ROS (colcon route) or from the ROS 2 PyPI wheels (venv route).
    install_requires=[
        "numpy",
        "scipy",
        "opencv-python-headless",
        "torch>=2.1",
        "trimesh",
        "safetensors",
        "tqdm",
        "onnx",
        "onnxruntime",
        "tflite",
        "flatbuffers",
        "rosbags",
        "pyyaml",
        "platformdirs",
        "onnxscript",
        "threadpoolctl",
        # LiteRT/XNNPACK: the fastest measured CPU runtime for the MediaPipe networks (backend='auto')
        "ai-edge-litert",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "colcon-common-extensions"],
        # training: offscreen renderer (synthetic data), diffusion schedulers, differentiable
        # silhouettes (S2HAND), TensorBoard
        "train": ["torchvision", "tensorboard", "moderngl", "diffusers", "deodr"],
    },
    zip_safe=True,
    maintainer="hand_pose_ros maintainers",
    description="Monocular RGB 3D hand pose (21 joints in metres, MANO mesh) for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hand-pose = hand_pose_core.cli:main",
            "hand_pose_node = hand_pose_ros.hand_pose_node:main",
            "hand_pose_replay = hand_pose_ros.replay_node:main",
            "hand_pose_consumer = hand_pose_ros.consumer_example:main",
            "hand_pose_demo = hand_pose_ros.demo:main",
        ],
    },
)
