"""Small Keras networks for tests (built fresh, seeded, so tests don't share state)."""
from __future__ import annotations

from search_spaces import import_keras


def tiny_cnn(input_shape=(16, 16, 3), num_classes=5, seed=0, batch_size=1):
    """Conv -> depthwise -> pool -> dense: runs fully on the Ethos-U NPU."""
    keras = import_keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, batch_size=batch_size)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def gather_cnn(seed=0):
    """A network with a GATHER, which the Ethos-U55 runs on the CPU (fallback)."""
    keras = import_keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 4), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.Lambda(lambda t: keras.ops.take(t, [3, 1, 0, 2, 7, 5], axis=3))(x)
    x = layers.Conv2D(8, 1)(x)
    outputs = layers.Flatten()(x)
    return keras.Model(inputs, outputs, name="gather_cnn")
