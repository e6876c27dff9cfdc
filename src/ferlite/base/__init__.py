"""The base every layer may import: label order, architecture names, the model-metadata type,
the shared preprocessing, the event type with its proto converters, and the event rules.

It imports only the generated contract (`ferlite.v1`) and third-party libraries: never a service,
training or the application (tests/unit/test_layers.py enforces it).
"""
