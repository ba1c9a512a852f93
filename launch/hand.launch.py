"""Launch hand_pose_node (and optionally the replay node and RViz).

    ros2 launch hand_pose_ros hand.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info backend:=onnxruntime
    ros2 launch hand_pose_ros hand.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info depth:=/camera/aligned_depth_to_color/image_raw
    ros2 launch hand_pose_ros hand.launch.py replay:=true              # built-in sample photo
    ros2 launch hand_pose_ros hand.launch.py replay:=true replay_source:=/path/video.mp4 rviz:=true

Where ``ros2 launch`` is not available (ROS 2 from PyPI wheels), ``hand_pose_demo`` starts the
same processes; see docs/ros.md.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

PACKAGE = "hand_pose_ros"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share, "config", "hand_pose.yaml")
    shm_profile = os.path.join(share, "config", "fastdds_shm_large_images.xml")
    rviz_config = os.path.join(share, "config", "hand_pose.rviz")

    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    depth = LaunchConfiguration("depth")
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input sensor_msgs/Image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="input CameraInfo topic"),
        DeclareLaunchArgument("depth", default_value="depth",
                              description="input depth image aligned to the colour image (16UC1 mm / 32FC1 m), optional"),
        DeclareLaunchArgument("use_depth", default_value="true", description="fuse the depth topic when it publishes"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="hand_pose_node parameter YAML"),
        DeclareLaunchArgument("backend", default_value="onnxruntime", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu | cuda | auto"),
        DeclareLaunchArgument("replay", default_value="false", description="also start hand_pose_replay"),
        DeclareLaunchArgument("replay_source", default_value="builtin",
                              description="video / image folder / image / bag for the replay; builtin: the sample photo"),
        DeclareLaunchArgument("replay_rate", default_value="0.0", description="replay rate, Hz; 0: native"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with the hand displays"),
        DeclareLaunchArgument("shm_profile", default_value="true",
                              description="load the large-image Fast DDS shared-memory profile (single host only)"),
    ]
    use_shm = IfCondition(LaunchConfiguration("shm_profile"))
    # The profile must be set for every process of the graph; the launch sets it for its own children.
    env = [
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", shm_profile, condition=use_shm),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", shm_profile, condition=use_shm),
    ]
    node = Node(
        package=PACKAGE,
        executable="hand_pose_node",
        name="hand_pose_node",
        output="screen",
        parameters=[LaunchConfiguration("params_file"),
                    {"backend": LaunchConfiguration("backend"), "device": LaunchConfiguration("device"),
                     "use_depth": LaunchConfiguration("use_depth")}],
        remappings=[("image", image), ("image/compressed", [image, "/compressed"]), ("camera_info", camera_info),
                    ("depth", depth)],
    )
    replay = Node(
        package=PACKAGE,
        executable="hand_pose_replay",
        name="hand_pose_replay",
        output="screen",
        condition=IfCondition(LaunchConfiguration("replay")),
        parameters=[{
            "source": LaunchConfiguration("replay_source"),
            "rate_hz": PythonExpression(["float(", LaunchConfiguration("replay_rate"), ")"]),
        }],
        remappings=[("image", image), ("image/compressed", [image, "/compressed"]), ("camera_info", camera_info),
                    ("depth", depth)],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", rviz_config],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription(args + env + [node, replay, rviz])
