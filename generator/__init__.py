"""kgen: generate TensorFlow/Keras projects that train models from scratch."""

__version__ = "0.1.0"
