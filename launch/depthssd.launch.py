"""Launch the depthssd perception node on a CARLA camera published by carla-ros-bridge.

Arguments (``ros2 launch depthssd_ros depthssd.launch.py --show-args``):

- ``params_file``: the node's parameter file (default: the package's ``config/depthssd.yaml``;
  every node parameter and its default lives there, none here). A file that does not exist
  stops the launch with one line naming it.
- ``role_name``: the ego vehicle's role name in CARLA (``ego_vehicle``).
- ``camera``: the RGB camera's sensor id on that vehicle (``rgb_front``).
- ``use_sim_time``: follow ``/clock`` as the bridge does (``true``).

The node subscribes relative ``image`` and ``camera_info``; they are remapped to the bridge's
``/carla/<role_name>/<camera>/image`` and ``.../camera_info``. It keeps its own name, so its
outputs are ``/depthssd_node/detections``, ``/depthssd_node/depth``, ... as with ``ros2 run``.

Unless ``FASTDDS_DEFAULT_PROFILES_FILE`` is already set, the node gets the package's
``config/fastdds_large_images.xml``: with Fast DDS's default 512 KB shared-memory segment most
camera frames never arrive (see that file). When the node exits (also when it cannot start),
the launch ends.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depthssd_ros"
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def generate_launch_description() -> LaunchDescription:
    """The perception node with its parameter file and the CARLA camera remappings."""
    share = FindPackageShare(PACKAGE)
    params_file = LaunchConfiguration("params_file")
    role_name = LaunchConfiguration("role_name")
    camera = LaunchConfiguration("camera")
    use_sim_time = LaunchConfiguration("use_sim_time")
    camera_topic = ["/carla/", role_name, "/", camera]
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "depthssd.yaml"]),
            description="parameter file of the depthssd node"),
        DeclareLaunchArgument(
            "role_name", default_value="ego_vehicle",
            description="role name of the ego vehicle in CARLA (topic prefix /carla/<role_name>)"),
        DeclareLaunchArgument(
            "camera", default_value="rgb_front",
            description="id of the RGB camera sensor on the ego vehicle"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="true", choices=["true", "false"],
            description="use the simulator's /clock (carla-ros-bridge runs in simulated time)"),
        # The user's own profile wins; otherwise the package's (large camera images).
        SetEnvironmentVariable(FASTDDS_PROFILE_VARIABLE, EnvironmentVariable(
            FASTDDS_PROFILE_VARIABLE,
            default_value=PathJoinSubstitution([share, "config", "fastdds_large_images.xml"]))),
        Node(
            package=PACKAGE,
            executable="depthssd_node",
            name="depthssd_node",
            output="screen",
            # As a ROS argument, not in `parameters`: launch_ros only warns about a parameter
            # file that does not exist and starts the node without it; the node refuses it.
            ros_arguments=["--params-file", params_file],
            parameters=[{"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
            remappings=[("image", [*camera_topic, "/image"]),
                        ("camera_info", [*camera_topic, "/camera_info"])],
            on_exit=Shutdown(reason="depthssd_node exited"),
        ),
    ])
