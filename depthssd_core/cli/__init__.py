"""Command-line entry points of depthssd_core (each exposes ``main(argv) -> int``)."""
