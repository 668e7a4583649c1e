"""launch_testing: depthssd.launch.py starts the node on the CARLA topics it remaps to.

For ROS 2 users (``launch_test test/launch_testing/test_depthssd_launch.py`` or colcon test
in a workspace where depthssd_ros is installed). Here ``launch_testing`` cannot be installed, so
the module is skipped; the same behaviour is covered by test/ros/ (node processes driven with
rclpy) and test/test_launch_files.py (static checks of the launch file).

The test feeds a synthetic camera under a non-default role name, so it also checks that the
launch arguments reach the remappings, then waits for the node's detections and depth and
checks that both carry the camera's header (its frame and the stamps of the frames it
published), and that ``use_sim_time:=true`` reaches the node as a boolean parameter.
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
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
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
    # Waits are bounds, not sleeps: loading the model takes up to a minute on a busy 2-core
    # machine, and the first test waits for it.
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("depthssd_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, done, timeout_s=180.0):
        end = self.node.get_clock().now().nanoseconds + int(timeout_s * 1e9)
        while not done() and self.node.get_clock().now().nanoseconds < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)

    def test_detections_and_depth_carry_the_camera_header(self):
        truth, detections, depth = [], [], []
        subs = [
            # The camera stamps its ground truth like its image: the stamps of the frames.
            self.node.create_subscription(
                Detection2DArray, f"/carla/{ROLE}/{CAMERA}/ground_truth", truth.append, 100),
            self.node.create_subscription(
                Detection2DArray, "/depthssd_node/detections", detections.append, 10),
            self.node.create_subscription(Image, "/depthssd_node/depth", depth.append, 10),
        ]
        self._spin_until(lambda: len(detections) >= 3 and depth)
        # Detections follow their frame's ground truth by an inference; let that catch up.
        self._spin_until(lambda: False, timeout_s=0.5)
        for sub in subs:
            self.node.destroy_subscription(sub)
        self.assertTrue(truth, "no ground truth from the synthetic camera")
        self.assertGreaterEqual(len(detections), 3, "no detections from the launched node")
        self.assertTrue(depth, "no depth image from the launched node")
        self.assertEqual(depth[0].encoding, "32FC1")

        def stamp_ns(msg):
            return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

        camera_stamps = {stamp_ns(msg) for msg in truth}
        # Outputs of frames published before the ground-truth subscription matched are skipped.
        seen = [msg for msg in detections + depth if stamp_ns(msg) >= min(camera_stamps)]
        self.assertTrue(seen, "no output of a frame whose ground truth was received")
        for msg in seen:
            self.assertIn(stamp_ns(msg), camera_stamps)
        for msg in detections + depth:
            self.assertEqual(msg.header.frame_id, f"{ROLE}/{CAMERA}")

    def test_use_sim_time_reaches_the_node_as_a_boolean(self):
        client = self.node.create_client(GetParameters, "/depthssd_node/get_parameters")
        try:
            self.assertTrue(client.wait_for_service(timeout_sec=180.0),
                            "the launched node offers no parameter service")
            future = client.call_async(GetParameters.Request(names=["use_sim_time"]))
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=30.0)
            self.assertTrue(future.done(), "no answer from /depthssd_node/get_parameters")
        finally:
            self.node.destroy_client(client)
        (value,) = future.result().values
        self.assertEqual(value.type, ParameterType.PARAMETER_BOOL)
        self.assertTrue(value.bool_value)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        # SIGINT on shutdown is a clean exit (code 0) for every node of the launch.
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])
