"""Command-line entry points of depthssd_core (each module has ``main(argv) -> int``)."""
