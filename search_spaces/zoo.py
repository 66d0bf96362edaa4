"""Networks from outside any search space (reference networks for out-of-space checks): TinyML classics, recurrent, attention, control flow.

Each builder returns a Keras model (or, for TF-only graphs, TFLite bytes directly).
"""
from __future__ import annotations

from search_spaces import import_keras, import_tensorflow


def ds_cnn():
    """MLPerf Tiny keyword spotting: DS-CNN on 49x10 MFCC."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((49, 10, 1), batch_size=1)
    x = L.Conv2D(64, (10, 4), strides=2, padding="same", use_bias=False)(inputs)
    x = L.ReLU()(L.BatchNormalization()(x))
    for _ in range(4):
        x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, 1, use_bias=False)(x)))
    x = L.AveragePooling2D((25, 5))(x)
    return keras.Model(inputs, L.Dense(12, activation="softmax")(L.Flatten()(x)), name="ds_cnn")


def resnet8():
    """MLPerf Tiny image classification: ResNet-8 on CIFAR-10."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inputs)))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, strides=stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.AveragePooling2D(8)(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(L.Flatten()(x)), name="resnet8")


def mobilenet_v1_025():
    """MLPerf Tiny visual wake words: MobileNetV1 alpha 0.25 at 96x96."""
    keras = import_keras()
    return keras.applications.MobileNet(weights=None, input_shape=(96, 96, 3), alpha=0.25, classes=2)


def fc_autoencoder():
    """MLPerf Tiny anomaly detection: the fully connected autoencoder on 640 features."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((640,), batch_size=1)
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = L.ReLU()(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inputs, L.Dense(640)(x), name="fc_autoencoder")


def lenet5():
    """LeNet-5 on 28x28 digits: 5x5 convolutions, average pooling, three dense layers."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1), batch_size=1)
    x = L.AveragePooling2D(2)(L.Conv2D(6, 5, padding="same", activation="relu")(inputs))
    x = L.AveragePooling2D(2)(L.Conv2D(16, 5, activation="relu")(x))
    x = L.Dense(84, activation="relu")(L.Dense(120, activation="relu")(L.Flatten()(x)))
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x), name="lenet5")


def micro_speech():
    """TensorFlow Lite Micro's micro_speech "tiny_conv": one strided 10x8 convolution on a
    49x40 spectrogram, then a dense layer."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((49, 40, 1), batch_size=1)
    x = L.Conv2D(8, (10, 8), strides=2, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, L.Dense(4, activation="softmax")(L.Flatten()(x)), name="micro_speech")


def mnist_cnn():
    """The Keras MNIST example: two 3x3 convolutions, max pooling, a 128-unit dense layer."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1), batch_size=1)
    x = L.Conv2D(32, 3, activation="relu")(inputs)
    x = L.MaxPooling2D(2)(L.Conv2D(64, 3, activation="relu")(x))
    x = L.Dense(128, activation="relu")(L.Flatten()(x))
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x), name="mnist_cnn")


def ecg_cnn1d():
    """A 1-D CNN on a 1,000-sample single-lead ECG (arrhythmia classifiers of this shape are
    a TinyML staple): strided Conv1D with batch norm, max pooling, global pooling."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1000, 1), batch_size=1)
    x = inputs
    for filters, kernel in ((16, 15), (32, 9), (64, 5), (64, 3)):
        x = L.ReLU()(L.BatchNormalization()(L.Conv1D(filters, kernel, strides=2, padding="same")(x)))
        x = L.MaxPooling1D(2)(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, L.Dense(5, activation="softmax")(x), name="ecg_cnn1d")


def lstm():
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((20, 16), batch_size=1)
    x = L.LSTM(32, return_sequences=True)(inputs)
    x = L.LSTM(32)(x)
    return keras.Model(inputs, L.Dense(4)(x), name="lstm")


def attention_block():
    """A transformer encoder block: multi-head self-attention + MLP, layer norms."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 32), batch_size=1)
    a = L.MultiHeadAttention(num_heads=4, key_dim=8)(inputs, inputs)
    x = L.LayerNormalization()(L.Add()([inputs, a]))
    m = L.Dense(32)(L.Dense(64, activation="gelu")(x))
    x = L.LayerNormalization()(L.Add()([x, m]))
    return keras.Model(inputs, L.Dense(5)(L.GlobalAveragePooling1D()(x)), name="attention")


def deep_chain(blocks=300):
    """A long residual chain of tiny convolutions: > 1,000 TFLite operators."""
    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 4), batch_size=1)
    x = inputs
    for _ in range(blocks):
        y = L.Conv2D(4, 1)(x)
        y = L.Multiply()([y, x])
        x = L.Add()([x, y])
        x = L.ReLU()(x)
    return keras.Model(inputs, x, name="deep_chain")


def _convert(concrete) -> bytes:
    from search_spaces._quiet import native_output_captured

    tf = import_tensorflow()
    with native_output_captured():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        return bytes(converter.convert())


def while_loop_model() -> bytes:
    """A WHILE op whose body (a subgraph) runs a matrix multiply."""
    tf = import_tensorflow()
    w = tf.constant(0.1, shape=(8, 8))

    @tf.function(input_signature=[tf.TensorSpec((1, 8), tf.float32)])
    def f(x):
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.nn.relu(tf.matmul(y, w))), (i, x))
        return y

    return _convert(f.get_concrete_function())


def if_model() -> bytes:
    """An IF op with two branch subgraphs."""
    tf = import_tensorflow()
    w = tf.constant(0.1, shape=(8, 8))

    @tf.function(input_signature=[tf.TensorSpec((1, 8), tf.float32)])
    def f(x):
        return tf.cond(tf.reduce_sum(x) > 0, lambda: tf.matmul(x, w), lambda: tf.nn.relu(x) * 2.0)

    return _convert(f.get_concrete_function())


def dynamic_batch_model() -> bytes:
    """A float model whose batch dimension is dynamic (-1 in the shape signature)."""
    tf = import_tensorflow()
    w = tf.constant(0.1, shape=(8, 4))

    @tf.function(input_signature=[tf.TensorSpec((None, 8), tf.float32)])
    def f(x):
        return tf.nn.relu(tf.matmul(x, w))

    return _convert(f.get_concrete_function())


KERAS_ZOO = {
    "ds_cnn": ds_cnn,
    "resnet8": resnet8,
    "mobilenet_v1_025": mobilenet_v1_025,
    "fc_autoencoder": fc_autoencoder,
    "lstm": lstm,
    "attention_block": attention_block,
}
TF_ZOO = {"while_loop": while_loop_model, "if": if_model, "dynamic_batch": dynamic_batch_model}
