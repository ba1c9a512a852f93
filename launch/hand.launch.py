"""Launch hand_pose_node (and optionally the replay node and RViz).

    ros2 launch hand_pose_ros hand.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info backend:=onnxruntime
    ros2 launch hand_pose_ros hand.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info depth:=/camera/aligned_depth_to_color/image_raw
    ros2 launch hand_pose_ros hand.launch.py replay:=true              # built-in sample photo
    ros2 launch hand_pose_ros hand.launch.py replay:=true replay_source:=/path/video.mp4 rviz:=true
    ros2 launch hand_pose_ros hand.launch.py model:=mano_regressor checkpoint:=runs/x/model.safetensors
    ros2 launch hand_pose_ros hand.launch.py cameras:=head,wrist   # head/image, wrist/image, ...

Where ``ros2 launch`` is not available (ROS 2 from PyPI wheels), ``hand_pose_demo`` starts the
same processes; see docs/ros.md.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from hand_pose_ros.launch_args import validate_launch_arguments

PACKAGE = "hand_pose_ros"
ARGUMENTS = ("image", "camera_info", "depth", "use_depth", "params_file", "backend", "device", "replay", "replay_source",
             "replay_rate", "rviz", "shm_profile", "model", "checkpoint", "cameras")


def _processes(context, share):
    """Validate every argument first (hand_pose_ros.launch_args): a bad value stops the launch
    with a message naming it, before any process has started. Then build the actions."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    cfg = validate_launch_arguments(values)  # raises LaunchArgumentError naming the argument
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    depth = LaunchConfiguration("depth")
    remappings = [("image", image), ("image/compressed", [image, "/compressed"]), ("camera_info", camera_info),
                  ("depth", depth)]
    actions = []
    if cfg["shm_profile"]:
        # The profile must be set for every process of the graph; the launch sets it for its own children.
        shm_profile = os.path.join(share, "config", "fastdds_shm_large_images.xml")
        actions += [SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", shm_profile),
                    SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", shm_profile)]
    actions.append(Node(
        package=PACKAGE,
        executable="hand_pose_node",
        name="hand_pose_node",
        output="screen",
        parameters=[cfg["params_file"], {"backend": cfg["backend"], "device": cfg["device"],
                                          "use_depth": cfg["use_depth"]},
                    cfg["node_parameters"]],  # model / checkpoint / cameras where given
        remappings=remappings,
    ))
    if cfg["replay"]:
        actions.append(Node(
            package=PACKAGE,
            executable="hand_pose_replay",
            name="hand_pose_replay",
            output="screen",
            parameters=[{"source": cfg["replay_source"], "rate_hz": float(cfg["replay_rate"])}],
            remappings=remappings,
        ))
    if cfg["rviz"]:
        rviz_config = os.path.join(share, "config", "hand_pose.rviz")
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", rviz_config]))
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share, "config", "hand_pose.yaml")
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input sensor_msgs/Image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="input CameraInfo topic"),
        DeclareLaunchArgument("depth", default_value="depth",
                              description="input depth image aligned to the colour image (16UC1 mm / 32FC1 m), optional"),
        DeclareLaunchArgument("use_depth", default_value="true", description="fuse the depth topic when it publishes"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="hand_pose_node parameter YAML"),
        DeclareLaunchArgument("backend", default_value="auto", description="auto | litert | onnxruntime | torch | tensorrt"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu | cuda | auto"),
        DeclareLaunchArgument("replay", default_value="false", description="also start hand_pose_replay (true | false)"),
        DeclareLaunchArgument("replay_source", default_value="builtin",
                              description="video / image folder / image / bag for the replay; builtin: the sample photo"),
        DeclareLaunchArgument("replay_rate", default_value="0.0", description="replay rate, Hz (>= 0); 0: native"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with the hand displays (true | false)"),
        DeclareLaunchArgument("shm_profile", default_value="true",
                              description="load the large-image Fast DDS shared-memory profile (single host only)"),
        DeclareLaunchArgument("model", default_value="",
                              description="3D source: mediapipe, or a trained model (mano_regressor, zimmermann_brox, "
                                          "diffusion_pose) with checkpoint; empty: the params file's"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="model file of the trained model (written by training)"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="comma-separated camera namespaces served by one node (e.g. head,wrist: "
                                          "head/image, head/camera_info, ...); empty: the params file's"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_processes, args=[share])])
