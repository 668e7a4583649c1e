"""launch_testing: depthssd.launch.py starts the node on the CARLA topics it remaps to.

For ROS 2 users (``launch_test test/launch_testing/test_depthssd_launch.py`` or colcon test
in a workspace where depthssd_ros is installed). Here ``launch_testing`` cannot be installed, so
the module is skipped; the same behaviour is covered by test/ros/ (node processes driven with
rclpy) and test/test_launch_files.py (static checks of the launch file).

The test feeds a synthetic camera under a non-default role name, so it also checks that the
launch arguments reach the remappings, then waits for the node's detections and depth and
checks that both carry the camera's header.
"""

# isort would take the repository's launch/ folder for the first-party `launch` package
# (I001).
import pytest

# Submodules, because this very folder is importable as a namespace package `launch_testing`
# (and the repository's launch/ folder as `launch`) wherever the real packages are missing.
pytest.importorskip("launch_testing.actions", reason="launch_testing (ROS 2) is not installed")
pytest.importorskip("launch_ros.actions", reason="launch_ros (ROS 2) is not installed")

import unittest

import launch_testing.actions
import launch_testing.asserts
import rclpy
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

ROLE = "launch_test_car"
CAMERA = "cam_front"


@pytest.mark.launch_test
def generate_test_description():
    share = FindPackageShare("depthssd_ros")
    camera = Node(
        package="depthssd_ros", executable="synthetic_camera", name="synthetic_camera",
        parameters=[PathJoinSubstitution([share, "config", "synthetic_camera.yaml"]),
                    {"role_name": ROLE, "camera": CAMERA}])
    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch",
                                                            "depthssd.launch.py"])),
        launch_arguments={"role_name": ROLE, "camera": CAMERA, "use_sim_time": "true"}.items())
    return LaunchDescription([camera, perception, launch_testing.actions.ReadyToTest()])


class TestDepthssdLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("depthssd_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _collect(self, msg_type, topic, count, timeout_s=60.0):
        got = []
        sub = self.node.create_subscription(msg_type, topic, got.append, 10)
        end = self.node.get_clock().now().nanoseconds + int(timeout_s * 1e9)
        while len(got) < count and self.node.get_clock().now().nanoseconds < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.node.destroy_subscription(sub)
        return got

    def test_detections_and_depth_follow_the_camera(self):
        detections = self._collect(Detection2DArray, "/depthssd_node/detections", 3)
        self.assertGreaterEqual(len(detections), 3, "no detections from the launched node")
        for msg in detections:
            self.assertEqual(msg.header.frame_id, f"{ROLE}/{CAMERA}")
            self.assertGreater(msg.header.stamp.sec + msg.header.stamp.nanosec, 0)
        depth = self._collect(Image, "/depthssd_node/depth", 1)
        self.assertTrue(depth, "no depth image from the launched node")
        self.assertEqual(depth[0].encoding, "32FC1")
        self.assertEqual(depth[0].header.frame_id, f"{ROLE}/{CAMERA}")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        # SIGINT on shutdown is a clean exit for every node of the launch.
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2])
