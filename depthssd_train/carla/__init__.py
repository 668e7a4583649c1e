"""Capturing depthssd datasets from a real CARLA server (``carla`` is imported lazily).

``decode`` holds the pure array functions (depth and instance decoding, boxes from instance
maps, Unreal-to-optical transforms); ``capture`` drives the simulator.
"""
