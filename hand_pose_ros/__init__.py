"""ROS 2 adapters for hand_pose_core: messages in, messages out, no maths.

Modules:
    image_conv        sensor_msgs/Image and CompressedImage <-> numpy RGB, with named errors
    hand_msgs         Hand results -> PointCloud2 / MarkerArray / debug image messages
    latest_slot       the 1-slot "latest wins" frame buffer with a dropped-frame counter
    diagnostics       rate/latency/bad-input bookkeeping -> diagnostic_msgs/DiagnosticArray
    hand_pose_node    the node (console script ``hand_pose_node``)
    replay_node       video / image folder / still image / bag replay (``hand_pose_replay``)
    consumer_example  a small consumer printing joints (``hand_pose_consumer``)
    demo              replay + node + consumer in one command (``hand_pose_demo``)
    procs             environment and paths for child processes (demo, tests)
    launch_args       checks of hand.launch.py's arguments before any process starts
    shutdown          clean exit of the nodes' main() under repeated SIGINT
"""
