"""The CARLA demo: a camera source, the depthssd node, the example planner and rviz2.

Arguments (``ros2 launch depthssd_ros carla_demo.launch.py --show-args``):

- ``source``: ``carla`` expects carla-ros-bridge to publish the ego vehicle's camera (start the
  bridge and its ego vehicle yourself); ``synthetic`` starts the ``synthetic_camera`` node,
  which publishes the project's synthetic world on the same topics, with ground truth.
- ``role_name``: the ego vehicle's role name (``ego_vehicle``).
- ``camera``: the RGB camera's sensor id (``rgb_front``).
- ``params_file``: the depthssd node's parameter file (the package's ``config/depthssd.yaml``;
  a file that does not exist stops the launch with one line naming it).
- ``rviz``: start rviz2 with ``config/depthssd.rviz`` (``false``; with ``true`` and no rviz2
  installed, one line says so and the rest runs).
- ``planner``: start ``planner_example`` on the node's detections (``true``).
- ``use_sim_time``: follow ``/clock`` (``true``; the bridge and the synthetic camera publish it).

Node parameters live in ``config/*.yaml`` only; this file passes those files and the few
values a deployer changes here (role name, camera, simulated time). Unless
``FASTDDS_DEFAULT_PROFILES_FILE`` is already set, every node started here gets the package's
``config/fastdds_large_images.xml`` (large camera images over shared memory; see that file,
and start carla-ros-bridge with the same variable).
"""

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
    SetEnvironmentVariable,
)
from launch.condition import Condition
from launch.conditions import IfCondition
from launch.launch_context import LaunchContext
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import (
    EnvironmentVariable,
    LaunchConfiguration,
    PathJoinSubstitution,
    PythonExpression,
)
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depthssd_ros"
#: The perception node's name in depthssd.launch.py: its outputs are /depthssd_node/<topic>.
PERCEPTION_NODE = "depthssd_node"
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def _source_is(value: str) -> IfCondition:
    return IfCondition(PythonExpression(["'", LaunchConfiguration("source"), f"' == '{value}'"]))


def _installed(package: str) -> bool:
    """Whether ``package`` is in the ament index (a Node of a missing package aborts launch,
    leaving the processes already started as orphans)."""
    try:
        get_package_prefix(package)
    except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        return False
    return True


def _rviz_asked(installed: bool) -> Condition:
    """``rviz:=true`` and rviz2 installed (``installed=True``) or missing (``False``)."""
    def predicate(context: LaunchContext) -> bool:
        asked = LaunchConfiguration("rviz").perform(context).lower() == "true"
        return asked and _installed("rviz2") == installed
    return Condition(predicate=predicate)


def generate_launch_description() -> LaunchDescription:
    """Camera source (CARLA or synthetic), perception, planner and rviz2."""
    share = FindPackageShare(PACKAGE)
    role_name = LaunchConfiguration("role_name")
    camera = LaunchConfiguration("camera")
    use_sim_time = LaunchConfiguration("use_sim_time")
    sim_time = {"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}
    return LaunchDescription([
        DeclareLaunchArgument(
            "source", default_value="carla", choices=["carla", "synthetic"],
            description="camera source: carla-ros-bridge (started separately) or the "
                        "synthetic world"),
        DeclareLaunchArgument(
            "role_name", default_value="ego_vehicle",
            description="role name of the ego vehicle (topic prefix /carla/<role_name>)"),
        DeclareLaunchArgument(
            "camera", default_value="rgb_front",
            description="id of the RGB camera sensor on the ego vehicle"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "depthssd.yaml"]),
            description="parameter file of the depthssd node"),
        DeclareLaunchArgument(
            "rviz", default_value="false", choices=["true", "false"],
            description="start rviz2 with config/depthssd.rviz (if rviz2 is installed)"),
        DeclareLaunchArgument(
            "planner", default_value="true", choices=["true", "false"],
            description="start the example planner on the detections"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="true", choices=["true", "false"],
            description="follow /clock (published by the bridge or the synthetic camera)"),
        # Before any node: the user's own profile wins, otherwise the package's.
        SetEnvironmentVariable(FASTDDS_PROFILE_VARIABLE, EnvironmentVariable(
            FASTDDS_PROFILE_VARIABLE,
            default_value=PathJoinSubstitution([share, "config", "fastdds_large_images.xml"]))),
        LogInfo(
            condition=_source_is("carla"),
            msg=["waiting for carla-ros-bridge on /carla/", role_name, "/", camera,
                 "/image (start the bridge with an ego vehicle carrying that camera)"]),
        LogInfo(
            condition=_rviz_asked(installed=False),
            msg="rviz:=true but rviz2 is not installed (ros-$ROS_DISTRO-rviz2): running "
                "without it"),
        # The synthetic camera is the clock source: it runs on wall time (no use_sim_time).
        Node(
            condition=_source_is("synthetic"),
            package=PACKAGE,
            executable="synthetic_camera",
            name="synthetic_camera",
            output="screen",
            parameters=[PathJoinSubstitution([share, "config", "synthetic_camera.yaml"]),
                        {"role_name": role_name, "camera": camera}],
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([share, "launch", "depthssd.launch.py"])),
            launch_arguments={
                "params_file": LaunchConfiguration("params_file"),
                "role_name": role_name,
                "camera": camera,
                "use_sim_time": use_sim_time,
            }.items(),
        ),
        Node(
            condition=IfCondition(LaunchConfiguration("planner")),
            package=PACKAGE,
            executable="planner_example",
            name="planner_example",
            output="screen",
            parameters=[PathJoinSubstitution([share, "config", "planner.yaml"]), sim_time],
            remappings=[("detections", f"/{PERCEPTION_NODE}/detections")],
        ),
        Node(
            condition=_rviz_asked(installed=True),
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "config", "depthssd.rviz"])],
            parameters=[sim_time],
        ),
    ])
