"""Real data for the examples, offline: scikit-learn's handwritten digits, and a short training run.

The 1,797 8x8 digit images (shipped inside scikit-learn, nothing is downloaded) are
resized to the keyword-spotting space's 49x10x1 input, so the candidates are exactly
the DS-CNN networks the predictor was trained on; only the data is not speech.
"""
from __future__ import annotations

import numpy as np

INPUT_SHAPE = (49, 10, 1)


def load_digits_data(subset: int | None = None, seed: int = 0):
    """``(x_train, y_train, x_val, y_val)``: 80/20 split, float32 in [0, 1], shape ``(n, 49, 10, 1)``."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    if subset:
        order = order[:subset]
    images, labels = images[order], labels[order]
    factors = (INPUT_SHAPE[0] / images.shape[1], INPUT_SHAPE[1] / images.shape[2])
    x = np.stack([zoom(img, factors, order=1) for img in images])[..., None].astype(np.float32)
    split = int(0.8 * len(x))
    return x[:split], labels[:split], x[split:], labels[split:]


def recalibrate_batchnorm(keras, model, x) -> None:
    """Sets every BatchNorm's moving statistics to those of ``x``.

    A few dozen steps leave the moving averages (momentum 0.99) far from the
    activations' statistics, and the trained network predicts one class in inference
    mode; one training-mode pass with momentum 0 is the usual fix for short schedules.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum


def make_accuracy(data, epochs: int = 3, batch_size: int = 64):
    """An ``accuracy(candidate)`` objective: train the candidate on the digits, return validation accuracy (%).

    Intermediate accuracies are reported to the trial (``trial.report``), so a pruner
    can stop a poor training early in single-objective studies.
    """
    x_train, y_train, x_val, y_val = data

    def accuracy(candidate) -> float:
        from search_spaces import import_keras

        keras = import_keras()
        model = candidate.build(batch_size=None)  # trainable, any batch size
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        single = len(candidate.trial.study.directions) == 1
        score = 0.0
        for epoch in range(epochs):
            model.fit(x_train, y_train, epochs=1, batch_size=batch_size, verbose=0, shuffle=True)
            recalibrate_batchnorm(keras, model, x_train[:512])
            score = 100.0 * float(model.evaluate(x_val, y_val, batch_size=256, verbose=0)[1])
            if single:
                candidate.trial.report(score, epoch)
                if candidate.trial.should_prune():
                    import optuna

                    candidate.trial.set_user_attr("status", f"pruned by the pruner after epoch {epoch + 1}")
                    raise optuna.TrialPruned()
        return score

    return accuracy
