"""``ros2 launch PKG FILE ARGS...`` without ros2cli, the way ``ros2launch`` itself does it:
``get_share_file_path_from_package`` + ``launch_a_launch_file``.

    python ros_launch_runner.py --path DIR [--path DIR ...] PKG FILE [name:=value ...]

``--path`` folders (the scratch install of the vendored launch wheels, the import-only
``composition_interfaces`` stand-in) go first on *this* process's ``sys.path`` only: the nodes
launch starts do not inherit them. Run it after ``source install/setup.bash``.
"""
import sys


def main(argv):
    paths = []
    while argv and argv[0] == "--path":
        paths.append(argv[1])
        argv = argv[2:]
    sys.path[0:0] = paths
    from ros2launch.api import get_share_file_path_from_package, launch_a_launch_file

    package, file_name, *arguments = argv
    path = get_share_file_path_from_package(package_name=package, file_name=file_name)
    return launch_a_launch_file(launch_file_path=path, launch_file_arguments=arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
