"""The application layer: the CLI, the local stack and its supervisor, the camera client, the demo.

The top of the house: it may import every other layer, and nothing imports it.
"""
