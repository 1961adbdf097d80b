"""tlrl's thin layer set: `tf.Module`s whose call is plain TF ops."""
from tlrl.layers import activations, initializers
from tlrl.layers.base import Layer
from tlrl.layers.keras_interop import KerasModule, as_module
from tlrl.layers.layers import Conv2D, Dense, Flatten, Lambda, LayerNorm, Sequential

__all__ = ["Layer", "Dense", "Conv2D", "Flatten", "LayerNorm", "Lambda", "Sequential", "KerasModule", "as_module",
           "activations", "initializers"]
