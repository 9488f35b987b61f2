"""`PackedEnsemble`: a weighted ensemble of trained models as one Keras model whose weights
are stored at each branch's precision (float32, float16 or int8 per output channel), so the
.keras file is about the ensemble's bytes (issue 17, `y8m pack`)."""

from __future__ import annotations

import copy
import types

import keras
import numpy as np
from keras import ops

from frame_models.quantization import (
    MIN_ELEMENTS,
    PRECISIONS,
    encode_int8,
    shape_bytes,
    stores_int8,
)

__all__ = ["PackedEnsemble"]


@keras.saving.register_keras_serializable(package="y8m")
class PackedEnsemble(keras.Model):
    """The weighted sum of its branches' top-K probabilities, each branch a model rebuilt from
    its architecture and run on weights decoded from their stored precision.

    Per branch: the weights are decoded to float32 (int8 codes * per-channel scale, float16
    cast up, float32 as is), the branch runs with them (`stateless_call`, inference mode),
    only its `top_k` highest probabilities are kept (the others count 0, as a class outside a
    prediction store's top-K does in `ensembles.averaging.weighted_average`; ties at the cut go
    to the lower class index, as `y8m.metrics.top_k_per_row` breaks them), and the result is
    `sum_b weight_b * kept_b / sum_b weight_b`.

    The branch models are held outside Keras' tracking, so only this model's own weights are
    saved: per branch tensor, in the branch's `weights` order, an int8 `codes` tensor and a
    float32 `scale` per output channel for tensors int8 quantises (`stores_int8`), a float16
    tensor for float16 branches, and the float32 tensor otherwise (batch-norm statistics too).

    Args:
        branches: one dict per branch: `model` (`keras.saving.serialize_keras_object` of the
            branch, its architecture), `precision` ("float32", "float16" or "int8"), `weight`
            (>= 0), `top_k` (classes kept, the top-K of its prediction store) and `name`.
        num_classes: C, every branch's output width.
        min_elements: the smallest tensor int8 quantises (as `y8m.run.quantize` did).

    Call arguments:
        inputs: dict of the reader's tensors the branches take: all frame-level (`rgb`
            (B, T, D), `audio`, `num_frames` (B,)) or all video-level (`mean_rgb` (B, D), ...).

    Output shape:
        (B, C) float32, the ensemble's probabilities.
    """

    def __init__(self, branches, num_classes, min_elements=MIN_ELEMENTS, **kwargs):
        super().__init__(**kwargs)
        branches = copy.deepcopy(list(branches or []))
        if not branches:
            raise ValueError("PackedEnsemble needs at least one branch")
        self.num_classes = int(num_classes)
        self.min_elements = int(min_elements)
        # A SimpleNamespace is neither a layer nor a container, so neither Keras' tracker nor
        # the saver sees the branch models: their float32 variables are not saved.
        self._packed = types.SimpleNamespace(branches=branches, models=[], plans=[])
        for index, branch in enumerate(branches):
            _check_branch(branch, index)
            # Deserialising consumes parts of the config it is given: keep ours whole.
            model = keras.saving.deserialize_keras_object(copy.deepcopy(branch["model"]))
            self._packed.models.append(model)
            self._packed.plans.append(self._make_plan(model, branch["precision"], index))
        self._packed.inputs = _input_names(self._packed.models, [b["name"] for b in branches])
        widths = {int(m.outputs[0].shape[-1]) for m in self._packed.models}
        if widths != {self.num_classes}:
            raise ValueError(f"branches output {sorted(widths)} classes, expected {num_classes}")
        if sum(float(b["weight"]) for b in branches) <= 0:
            raise ValueError("the branch weights sum to 0: give one a positive weight")
        self.built = True

    @property
    def branches(self) -> list[dict]:
        """The branch dicts (copies), as passed to the constructor."""
        return copy.deepcopy(self._packed.branches)

    @classmethod
    def from_models(
        cls, models, precisions, weights, top_ks, names=None, min_elements=MIN_ELEMENTS, **kwargs
    ) -> PackedEnsemble:
        """A packed ensemble of built Keras MODELS, their weights stored at PRECISIONS.

        Args:
            models: trained Keras models (functional, dict inputs), one per branch.
            precisions: "float32", "float16" or "int8" per model.
            weights: ensemble weight per model.
            top_ks: classes each branch keeps (its prediction store's top-K).
            names: branch names (default branch0, branch1, ...).
            min_elements: the smallest tensor int8 quantises.
        """
        names = list(names) if names is not None else [f"branch{i}" for i in range(len(models))]
        columns = [list(models), list(precisions), list(weights), list(top_ks), names]
        if len({len(c) for c in columns}) != 1:
            raise ValueError("from_models needs one precision, weight, top_k and name per model")
        branches = [
            {
                "model": keras.saving.serialize_keras_object(m),
                "precision": str(p),
                "weight": float(w),
                "top_k": int(k),
                "name": str(n),
            }
            for m, p, w, k, n in zip(*columns)
        ]
        num_classes = int(models[0].outputs[0].shape[-1])
        packed = cls(branches, num_classes, min_elements, **kwargs)
        for index, model in enumerate(models):
            packed.set_branch_weights(index, model.get_weights())
        return packed

    def set_branch_weights(self, index: int, arrays) -> None:
        """Stores ARRAYS (branch INDEX's `get_weights()`, float32) at the branch's precision."""
        plan = self._packed.plans[index]
        if len(arrays) != len(plan.storage):
            raise ValueError(
                f"branch {index} has {len(plan.storage)} weights, got {len(arrays)} arrays"
            )
        for (kind, variables), array in zip(plan.storage, arrays):
            array = np.asarray(array)
            if kind == "int8":
                codes, scale = encode_int8(array)
                variables[0].assign(codes)
                variables[1].assign(scale)
            else:
                variables[0].assign(array.astype(variables[0].dtype))

    def branch_bytes(self) -> list[int]:
        """The stored bytes of each branch's weights (as `y8m.run.quantize.model_bytes`)."""
        return [plan.bytes for plan in self._packed.plans]

    def call(self, inputs):
        total = float(sum(float(b["weight"]) for b in self._packed.branches))
        out = None
        for branch, model, plan in zip(self._packed.branches, self._packed.models,
                                       self._packed.plans):  # fmt: skip
            if float(branch["weight"]) <= 0:
                continue
            values = [_decode(kind, variables) for kind, variables in plan.storage]
            trainable = [_pick(values, plan, v) for v in model.trainable_variables]
            frozen = [_pick(values, plan, v) for v in model.non_trainable_variables]
            feed = {name: inputs[name] for name in self._packed.inputs}
            probs, _ = model.stateless_call(trainable, frozen, feed, training=False)
            kept = _keep_top_k(ops.cast(probs, "float32"), int(branch["top_k"]))
            term = kept * (float(branch["weight"]) / total)
            out = term if out is None else out + term
        return out  # (B, C)

    def compute_output_shape(self, input_shape):
        first = next(iter(input_shape.values())) if isinstance(input_shape, dict) else input_shape
        return (first[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            branches=self.branches, num_classes=self.num_classes, min_elements=self.min_elements
        )
        return config

    def _make_plan(self, model, precision: str, index: int) -> types.SimpleNamespace:
        """This model's own variables for branch INDEX's weights, and where each goes."""
        storage, size = [], 0
        for j, w in enumerate(model.weights):
            shape, dtype = tuple(w.shape), np.dtype(w.dtype)
            size += shape_bytes(shape, dtype, precision, self.min_elements)
            name = f"b{index}_{j}"
            if stores_int8(shape, dtype, precision, self.min_elements):
                codes = self._stored(f"{name}_codes", shape, "int8")
                scale = self._stored(f"{name}_scale", shape[-1:], "float32")
                storage.append(("int8", (codes, scale)))
            elif precision == "float16" and dtype.kind == "f":
                storage.append(("float16", (self._stored(name, shape, "float16"),)))
            else:
                storage.append(("plain", (self._stored(name, shape, dtype.name),)))
        position = {id(w): j for j, w in enumerate(model.weights)}
        # Variables outside `weights` (seed states) are inert at inference: their own values.
        extra = {
            id(v): np.asarray(v.numpy())
            for v in list(model.trainable_variables) + list(model.non_trainable_variables)
            if id(v) not in position
        }
        return types.SimpleNamespace(storage=storage, position=position, extra=extra, bytes=size)

    def _stored(self, name, shape, dtype):
        return self.add_weight(
            name=name, shape=shape, dtype=dtype, initializer="zeros", trainable=False
        )


def _decode(kind, variables):
    """A stored weight as the float32 (or own-dtype) tensor the branch computes with."""
    if kind == "int8":
        codes, scale = variables
        return ops.cast(codes, "float32") * scale
    if kind == "float16":
        return ops.cast(variables[0], "float32")
    return ops.convert_to_tensor(variables[0])


def _pick(values, plan, variable):
    if id(variable) in plan.position:
        return values[plan.position[id(variable)]]
    return ops.convert_to_tensor(plan.extra[id(variable)])


def _keep_top_k(probs, k: int):
    """PROBS (B, C) with all but each row's K largest set to 0; ties at the K-th value keep
    the lower class indices, so exactly K stay (as a prediction store keeps them)."""
    if k >= probs.shape[-1]:
        return probs
    kth = ops.top_k(probs, k, sorted=True)[0][:, k - 1 : k]  # (B, 1)
    above = ops.greater(probs, kth)
    tied = ops.equal(probs, kth)
    room = k - ops.sum(ops.cast(above, "int32"), axis=1, keepdims=True)  # (B, 1)
    first_ties = ops.logical_and(tied, ops.cumsum(ops.cast(tied, "int32"), axis=1) <= room)
    return ops.where(ops.logical_or(above, first_ties), probs, ops.zeros_like(probs))


def _check_branch(branch: dict, index: int) -> None:
    missing = [k for k in ("model", "precision", "weight", "top_k", "name") if k not in branch]
    if missing:
        raise ValueError(f"branch {index} lacks {', '.join(missing)}")
    if branch["precision"] not in PRECISIONS:
        raise ValueError(
            f"branch {index} precision {branch['precision']!r}: use one of {', '.join(PRECISIONS)}"
        )
    weight = float(branch["weight"])
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"branch {index} weight must be finite and >= 0, got {weight}")
    if int(branch["top_k"]) < 1:
        raise ValueError(f"branch {index} top_k must be >= 1, got {branch['top_k']}")


def _input_names(models, names) -> list[str]:
    """The reader tensors every branch takes; all branches must take the same ones."""
    sets = [sorted(t.name for t in m.inputs) for m in models]
    for name, taken in zip(names[1:], sets[1:]):
        if taken == sets[0]:
            continue
        if ("num_frames" in taken) != ("num_frames" in sets[0]):
            raise ValueError(
                f"branches {names[0]!r} and {name!r} mix frame-level and video-level inputs: "
                "pack models of one level"
            )
        raise ValueError(
            f"branches {names[0]!r} ({', '.join(sets[0])}) and {name!r} ({', '.join(taken)}) "
            "take different features: pack models trained on the same features"
        )
    return sets[0]
