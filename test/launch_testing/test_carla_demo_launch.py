"""launch_testing: carla_demo.launch.py with ``source:=synthetic`` runs end to end.

For ROS 2 users (``launch_test test/launch_testing/test_carla_demo_launch.py`` or colcon test
with depthssd_ros installed). Here ``launch_testing`` cannot be installed, so the module is
skipped; the same pipeline is run by test/ros/test_demo.py (the three nodes in one process over
real topics) and the launch file is checked statically by test/test_launch_files.py.

Checks: the synthetic camera publishes on the CARLA topics and ``/clock``, the perception node
publishes detections stamped with the camera's frame, no camera frame is lost on its way to the
node (the launch file's Fast DDS profile; without it most 640x360 frames are), the planner
publishes its advisory, the perception node and the planner follow ``/clock`` while the
synthetic camera (its source) runs on wall time, rviz2 is not started by default, and every
process exits with code 0 on shutdown.
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
from diagnostic_msgs.msg import DiagnosticArray
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, UnsetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray


@pytest.mark.launch_test
def generate_test_description():
    demo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare("depthssd_ros"), "launch", "carla_demo.launch.py"])),
        launch_arguments={"source": "synthetic", "planner": "true"}.items())
    # The test session sets its own Fast DDS profile; unset, the launch file applies the
    # package's, which is what a user gets.
    return LaunchDescription([UnsetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE"), demo,
                              launch_testing.actions.ReadyToTest()])


class TestCarlaDemoLaunch(unittest.TestCase):
    # Waits are bounds, not sleeps: loading the model takes up to a minute on a busy 2-core
    # machine, and the first test waits for it.
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("carla_demo_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _collect(self, msg_type, topic, count, timeout_s=180.0):
        got = []
        sub = self.node.create_subscription(msg_type, topic, got.append, 10)
        end = self.node.get_clock().now().nanoseconds + int(timeout_s * 1e9)
        while len(got) < count and self.node.get_clock().now().nanoseconds < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.node.destroy_subscription(sub)
        return got

    def test_clock_from_synthetic_camera(self):
        clocks = self._collect(Clock, "/clock", 3)
        self.assertGreaterEqual(len(clocks), 3)
        stamps = [c.clock.sec * 1e9 + c.clock.nanosec for c in clocks]
        self.assertEqual(stamps, sorted(stamps))

    def test_detections_and_ground_truth_share_the_camera_frame(self):
        detections = self._collect(Detection2DArray, "/depthssd_node/detections", 3)
        truth = self._collect(Detection2DArray, "/carla/ego_vehicle/rgb_front/ground_truth", 3)
        self.assertGreaterEqual(len(detections), 3)
        self.assertGreaterEqual(len(truth), 3)
        for msg in detections + truth:
            self.assertEqual(msg.header.frame_id, "ego_vehicle/rgb_front")

    def test_no_frame_lost_before_the_node(self):
        def values(msg):
            for status in msg.status:
                if status.name.startswith("depthssd_node:"):
                    return {kv.key: kv.value for kv in status.values}
            return None

        deadline = self.node.get_clock().now().nanoseconds + int(120 * 1e9)
        last = None
        while self.node.get_clock().now().nanoseconds < deadline:
            got = [v for v in map(values, self._collect(DiagnosticArray, "/diagnostics", 1))
                   if v]
            last = got[-1] if got else last
            if last and int(last["frames_received"]) >= 60:
                break
        self.assertIsNotNone(last, "no /diagnostics from depthssd_node")
        received = int(last["frames_received"])
        self.assertGreaterEqual(received, 60, last)
        # The node's own drops are its latest-frame policy; frames missing upstream are lost
        # by the transport: none with the profile (a frame or two at most on a busy machine).
        self.assertLessEqual(int(last["frames_missing_upstream"]), 0.02 * received, last)
        self.assertAlmostEqual(float(last["camera_rate_hz"]), 20.0, delta=0.5)

    def test_rviz_is_not_started_by_default(self):
        names = [n for n, _ in self.node.get_node_names_and_namespaces()]
        self.assertIn("depthssd_node", names)
        self.assertNotIn("rviz2", names)

    def test_planner_advisory(self):
        advisories = self._collect(String, "/planner_example/advisory", 3)
        self.assertGreaterEqual(len(advisories), 3)
        self.assertTrue({a.data for a in advisories} <= {"none", "caution", "brake"})


    def _use_sim_time(self, node_name):
        client = self.node.create_client(GetParameters, f"/{node_name}/get_parameters")
        try:
            self.assertTrue(client.wait_for_service(timeout_sec=180.0),
                            f"{node_name} offers no parameter service")
            future = client.call_async(GetParameters.Request(names=["use_sim_time"]))
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=30.0)
            self.assertTrue(future.done(), f"no answer from /{node_name}/get_parameters")
        finally:
            self.node.destroy_client(client)
        (value,) = future.result().values
        self.assertEqual(value.type, ParameterType.PARAMETER_BOOL, node_name)
        return value.bool_value

    def test_sim_time_everywhere_but_the_clock_source(self):
        self.assertTrue(self._use_sim_time("depthssd_node"))
        self.assertTrue(self._use_sim_time("planner_example"))
        self.assertFalse(self._use_sim_time("synthetic_camera"))

@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])
