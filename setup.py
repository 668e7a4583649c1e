"""depthssd_ros: one ament_python package holding depthssd_core, depthssd_sim, depthssd_train
and the nodes."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "depthssd_ros"
HERE = Path(__file__).resolve().parent


def _tree(folder: str, patterns: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """data_files entries installing ``folder`` under share/<package>/, keeping subfolders."""
    entries: dict[str, list[str]] = {}
    for pattern in patterns:
        for path in sorted((HERE / folder).rglob(pattern)):
            if path.is_file():
                rel = path.relative_to(HERE)
                entries.setdefault(str(Path("share", PACKAGE, rel.parent)), []).append(str(rel))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["depthssd_core*", "depthssd_sim*", "depthssd_train*",
                                    "depthssd_ros*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *_tree("launch", ("*.py",)),
        *_tree("config", ("*.yaml", "*.rviz", "*.xml")),
        *_tree("models", ("*.safetensors", "*.md", "*.json")),
    ],
    package_data={"depthssd_core": ["py.typed"]},
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="depthssd developers",
    maintainer_email="depthssd@example.com",
    description="Real-time joint object detection and metric depth for CARLA, as a ROS 2 node.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            # ROS executables (ros2 run depthssd_ros <name>)
            "depthssd_node = depthssd_ros.perception_node:main",
            "synthetic_camera = depthssd_ros.synthetic_camera_node:main",
            "planner_example = depthssd_ros.planner_node:main",
            "depthssd_demo = depthssd_ros.demo:main",
            # Offline tools
            "depthssd-data = depthssd_train.cli.data:main",
            "depthssd-carla-capture = depthssd_train.cli.carla_capture:main",
            "depthssd-train = depthssd_train.cli.train:main",
            "depthssd-eval = depthssd_train.cli.evaluate:main",
            "depthssd-export = depthssd_core.cli.export:main",
            "depthssd-build-engine = depthssd_core.cli.build_engine:main",
        ],
    },
)
