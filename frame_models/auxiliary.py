"""What a model trains on beside its output: auxiliary predictions and their loss terms.

A registry model outputs (B, C) probabilities and nothing else, so evaluation, prediction and
export never see training-only parts. A model with an `OnlineDistillation` layer (mix_nextvlad)
also trains its branches: `TrainingView` reads the branch and mixture logits off that layer's
inputs and output in the same graph and adds each branch's label loss and the distillation
term, the total the reference trains on (winners_facts.md section 2). For every other model
the view is the model itself and the loss is the label loss alone.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from frame_models.layers.online_distillation import OnlineDistillation


def _distillation_layer(model) -> OnlineDistillation | None:
    found = [layer for layer in model.layers if isinstance(layer, OnlineDistillation)]
    if len(found) > 1:
        raise ValueError(f"model {model.name!r} has {len(found)} OnlineDistillation layers, not 1")
    return found[0] if found else None


class TrainingView:
    """A model's training forward pass: `(inputs, label_loss) -> (output, its loss, loss)`.

    Args:
        model: a functional registry model (also one loaded from a .keras file).

    Call arguments:
        inputs: the model's inputs.
        label_loss: `probabilities -> scalar` loss against the batch's targets; it is applied to
            the output and to every auxiliary prediction.
        training: forward mode (True for a train step).

    Returns:
        `(probabilities, output_loss, loss)`: the (B, C) output, its label loss, and the loss
        to minimise: that plus the auxiliary terms (none for a plain model). Regularisation
        losses are not included.
    """

    def __init__(self, model):
        self.model = model
        self.distillation = _distillation_layer(model)
        self._view = model
        if self.distillation is not None:
            branches = list(self.distillation.input[1:])
            self._view = keras.Model(
                model.input, [model.output, self.distillation.output, *branches]
            )

    @property
    def has_auxiliary_losses(self) -> bool:
        return self.distillation is not None

    def __call__(self, inputs, label_loss: Callable, training: bool = True):
        if self.distillation is None:
            probabilities = self.model(inputs, training=training)
            output_loss = label_loss(probabilities)
            return probabilities, output_loss, output_loss
        probabilities, mixture, *branches = self._view(inputs, training=training)
        output_loss = label_loss(probabilities)
        loss = output_loss + self.distillation.distillation_loss(mixture, branches)
        for logits in branches:
            loss = loss + label_loss(ops.sigmoid(ops.cast(logits, "float32")))
        return probabilities, output_loss, loss
