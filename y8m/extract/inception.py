"""Inception-v3 pool_3 features (2048-d) of RGB frames: the official frozen graph, or Keras'
InceptionV3 with local weights (winners_facts.md 6.1). Nothing is downloaded."""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from y8m.errors import UsageError

__all__ = ["FrameNetwork", "GraphNetwork", "KerasNetwork", "load_frame_network"]

FEATURE_SIZE = 2048
INPUT_SIZE = 299
GRAPH_FILE = "classify_image_graph_def.pb"
GRAPH_RELEASE = (
    "inception-2015-12-05.tgz "
    "(http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz)"
)
KERAS_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_WEIGHTS_RELEASE = "Keras applications (storage.googleapis.com/tensorflow/keras-applications)"
# The official graph's tensors (TF image_retraining retrain.py; [G] feature_extractor.py).
IMAGE_TENSOR = "DecodeJpeg:0"  # one (H, W, 3) uint8 image
RESIZED_TENSOR = "Mul:0"  # (1, 299, 299, 3) float32, (resized - 128) / 128
POOL_TENSOR = "pool_3:0"  # (1, 1, 1, 2048) after the final average pool
FEATURE_TENSOR = "pool_3/_reshape:0"  # (1, 2048): its reshape is to a constant [1, 2048]
_RESIZE_OPS = ("ResizeBilinear", "ResizeBicubic", "ResizeNearestNeighbor", "ResizeArea")


class FrameNetwork:
    """uint8 RGB frames of any size -> (B, 2048) float32 Inception-v3 pool_3 features.

    Frames are resized to 299 x 299 by the network (each backend documents how), in chunks of
    `batch_size`; TensorFlow places the work on a GPU when it sees one.

    Attributes:
        name: the backend, recorded beside extracted features.
        batch_size: frames per network call.

    Call arguments:
        images: a list of (H, W, 3) uint8 arrays (sizes may differ) or a (B, H, W, 3) array.
    """

    name = "frame_network"

    def __init__(self, batch_size: int = 32):
        if int(batch_size) != batch_size or batch_size < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)

    def __call__(self, images) -> np.ndarray:
        frames = _as_frames(images)
        outputs = [
            self._features(frames[start : start + self.batch_size])
            for start in range(0, len(frames), self.batch_size)
        ]
        if not outputs:
            return np.zeros((0, FEATURE_SIZE), np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _features(self, frames: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _Preprocessing:
    """What the graph does between DecodeJpeg and Mul, after the Cast to float32: the resize
    op with its attrs and output size, then (x - offset) * scale."""

    resize_op: str
    resize_attrs: dict
    size: tuple[int, int]
    offset: np.ndarray
    scale: np.ndarray


class GraphNetwork(FrameNetwork):
    """The official frozen Inception graph `classify_image_graph_def.pb` (from
    inception-2015-12-05.tgz), as the YouTube-8M extractor runs it.

    The graph takes one image at `DecodeJpeg:0` and resizes it itself (Cast -> ExpandDims ->
    ResizeBilinear to 299 x 299, align_corners and half_pixel_centers False in TF1 graphs ->
    Sub 128 -> `Mul` 1/128). To batch frames, this class reads that chain from the GraphDef,
    reproduces it with the same op, attrs and constants on each group of same-size frames,
    feeds the (B, 299, 299, 3) batch to `Mul:0` and reads `pool_3:0` (B, 1, 1, 2048)
    (`pool_3/_reshape` reshapes to a constant [1, 2048], so it cannot take a batch). The
    result equals feeding each frame at `DecodeJpeg:0` (tests: to 1e-5 on a fake graph with
    the official tensor names). When the chain is not the expected one, frames are fed one
    at a time at `DecodeJpeg:0` and `pool_3/_reshape:0` is read, as the official code does.

    Args:
        graph_path: the frozen GraphDef (binary protobuf; parsing it runs no code).
        batched: True to require the batched path, False to feed one image at a time, None
            to batch when the chain is recognised. See the `batched` attribute.
        batch_size: frames per network call.
    """

    name = "inception_graph"

    def __init__(self, graph_path: str, *, batched: bool | None = None, batch_size: int = 32):
        super().__init__(batch_size)
        import tensorflow as tf

        self.graph_path = graph_path
        graph_def = _read_graph_def(graph_path)
        nodes = {node.name: node for node in graph_def.node}
        for tensor in (IMAGE_TENSOR, RESIZED_TENSOR, POOL_TENSOR, FEATURE_TENSOR):
            if tensor.split(":")[0] not in nodes:
                raise UsageError(
                    f"{graph_path} has no tensor {tensor}: it is not the Inception graph "
                    f"{GRAPH_FILE} of {GRAPH_RELEASE}"
                )
        self.preprocessing = _preprocessing(nodes)
        if batched and self.preprocessing is None:
            raise UsageError(
                f"{graph_path}: the ops from {IMAGE_TENSOR} to {RESIZED_TENSOR} are not the "
                "official Cast -> ExpandDims -> resize -> Sub -> Mul chain, so frames cannot "
                "be batched exactly; leave batching to the default"
            )
        self.batched = self.preprocessing is not None if batched is None else bool(batched)
        if self.batched:
            spec = tf.TensorSpec((None, *self.preprocessing.size, 3), tf.float32)
            self._network = _import_graph(graph_path, graph_def, RESIZED_TENSOR, POOL_TENSOR, spec)
            self._prepare = _resizer(self.preprocessing)
        else:
            spec = tf.TensorSpec((None, None, 3), tf.uint8)
            self._network = _import_graph(graph_path, graph_def, IMAGE_TENSOR, FEATURE_TENSOR, spec)

    def _features(self, frames):
        import tensorflow as tf

        if not self.batched:
            return np.concatenate([self._network(tf.constant(f)).numpy() for f in frames])
        batch = tf.concat([self._prepare(tf.constant(g)) for g in _same_shape_groups(frames)], 0)
        return self._network(batch).numpy().reshape(len(frames), -1)  # (B, 1, 1, 2048) -> (B, 2048)


class KerasNetwork(FrameNetwork):
    """Keras' InceptionV3 (include_top=False, average pooling) with local weights.

    The official ImageNet file is `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`
    (Keras applications); a `.weights.h5` saved from the same model also loads. Frames are
    resized as the official graph does (TF1 ResizeBilinear to 299 x 299, no half-pixel
    centres), then scaled by Keras' preprocessing x / 127.5 - 1.

    Known differences from the official graph, so these are not the official features:
    - the weights: Keras' ImageNet file is a separate training of Inception-v3, not the 2015
      graph's weights, so pool_3 features differ, and the official PCA (fitted on the graph's
      features) neither centres nor whitens them exactly;
    - the scaling: x / 127.5 - 1 where the graph uses (x - 128) / 128, about 0.4% apart.

    Args:
        weights_path: a `.h5`, `.hdf5` or `.weights.h5` file.
        batch_size: frames per network call.
    """

    name = "keras_inception_v3"

    def __init__(self, weights_path: str, *, batch_size: int = 32):
        super().__init__(batch_size)
        import keras
        import tensorflow as tf

        self.weights_path = weights_path
        if not os.path.isfile(weights_path):
            raise UsageError(
                f"missing {weights_path}: the Keras InceptionV3 ImageNet weights are "
                f"{KERAS_WEIGHTS_FILE} from {KERAS_WEIGHTS_RELEASE}"
            )
        if not str(weights_path).endswith((".h5", ".hdf5")):
            raise UsageError(
                f"{weights_path} is not a .h5 or .weights.h5 file: pass {KERAS_WEIGHTS_FILE} "
                "or weights saved from keras.applications.InceptionV3(include_top=False)"
            )
        model = keras.applications.InceptionV3(
            weights=None, include_top=False, pooling="avg", input_shape=(INPUT_SIZE, INPUT_SIZE, 3)
        )
        try:
            # A wrong file raises; the warnings listing each unmatched layer only add noise.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.load_weights(weights_path)
        except (ValueError, OSError, KeyError, TypeError, IndexError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UsageError(
                f"cannot load {weights_path} into Keras InceptionV3 without top ({first}): "
                f"pass {KERAS_WEIGHTS_FILE} or a .weights.h5 saved from that model"
            ) from None
        self.model = model
        # x / 127.5 - 1 written as the graph's (x - offset) * scale.
        self._prepare = _resizer(
            _Preprocessing(
                "ResizeBilinear",
                {"align_corners": False, "half_pixel_centers": False},
                (INPUT_SIZE, INPUT_SIZE),
                offset=np.float32(127.5),
                scale=np.float32(1 / 127.5),
            )
        )
        self._network = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)],
        )

    def _features(self, frames):
        import tensorflow as tf

        batch = tf.concat([self._prepare(tf.constant(g)) for g in _same_shape_groups(frames)], 0)
        return self._network(batch).numpy()


def load_frame_network(
    inception_graph: str | None = None,
    inception_weights: str | None = None,
    *,
    batch_size: int = 32,
) -> FrameNetwork:
    """The frame network the flags name: exactly one of the frozen graph and Keras weights.

    Raises:
        UsageError: both or neither given, or the file is missing or not the expected network.
    """
    if inception_graph and inception_weights:
        raise UsageError(
            "pass one of --inception_graph and --inception_weights, not both: the frozen "
            f"graph {GRAPH_FILE} is the official network, Keras weights an approximation of it"
        )
    if inception_graph:
        return GraphNetwork(inception_graph, batch_size=batch_size)
    if inception_weights:
        return KerasNetwork(inception_weights, batch_size=batch_size)
    raise UsageError(
        f"missing --inception_graph: the official network is {GRAPH_FILE} from {GRAPH_RELEASE}; "
        f"or pass --inception_weights={KERAS_WEIGHTS_FILE} ({KERAS_WEIGHTS_RELEASE})"
    )


def _as_frames(images) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    frames = [np.asarray(image) for image in images]
    for frame in frames:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3 or 0 in frame.shape:
            raise ValueError(
                f"frames must be (H, W, 3) uint8 RGB arrays, got {frame.dtype} {frame.shape}"
            )
    return frames


def _same_shape_groups(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive frames of one size stacked as (b, H, W, 3), in order."""
    groups, start = [], 0
    for end in range(1, len(frames) + 1):
        if end == len(frames) or frames[end].shape != frames[start].shape:
            groups.append(np.stack(frames[start:end]))
            start = end
    return groups


def _read_graph_def(graph_path: str):
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    if not os.path.isfile(graph_path):
        raise UsageError(
            f"missing {graph_path}: the official Inception graph is {GRAPH_FILE} of {GRAPH_RELEASE}"
        )
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(graph_path, "rb") as f:
            graph_def.ParseFromString(f.read())
    except (OSError, DecodeError, ValueError) as err:
        raise UsageError(
            f"cannot read {graph_path} as a frozen GraphDef ({type(err).__name__}): "
            f"expected {GRAPH_FILE} of {GRAPH_RELEASE}"
        ) from None
    return graph_def


def _import_graph(graph_path, graph_def, feed: str, fetch: str, spec):
    """A TF2 function of the imported graph: `spec`-shaped input mapped to `feed` -> `fetch`."""
    import tensorflow as tf

    # Recorded shapes (`_output_shapes`, batch 1 after ExpandDims) would be merged into the
    # imported tensors and pin the batch to 1 after `Mul`; shape inference alone gives None.
    for node in graph_def.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]

    def imported(x):
        (output,) = tf.graph_util.import_graph_def(
            graph_def, input_map={feed: x}, return_elements=[fetch], name=""
        )
        return output

    try:
        return tf.compat.v1.wrap_function(imported, [spec])
    except (ValueError, TypeError, tf.errors.OpError) as err:
        reason = " ".join(str(err).split())[:200]
        raise UsageError(f"cannot import {graph_path} ({reason}): expected {GRAPH_FILE}") from None


def _preprocessing(nodes: dict) -> _Preprocessing | None:
    """The graph's DecodeJpeg -> Mul chain if it is the official one, else None."""
    import tensorflow as tf

    mul = nodes["Mul"]
    if mul.op != "Mul" or not _is_float(mul):
        return None
    sub, scale = _op_and_constant(nodes, mul, either_side=True)
    if sub is None or sub.op != "Sub" or not _is_float(sub):
        return None
    resize, offset = _op_and_constant(nodes, sub)
    if resize is None or resize.op not in _RESIZE_OPS:
        return None
    expand, size = _op_and_constant(nodes, resize)
    if expand is None or expand.op != "ExpandDims" or size is None or size.shape != (2,):
        return None
    cast, dim = _op_and_constant(nodes, expand)
    if cast is None or cast.op != "Cast" or dim is None or dim.reshape(-1).tolist() != [0]:
        return None
    if "DstT" not in cast.attr or cast.attr["DstT"].type != tf.float32.as_datatype_enum:
        return None
    if [_source(name) for name in cast.input] != ["DecodeJpeg"]:
        return None
    attrs = {
        k: resize.attr[k].b for k in ("align_corners", "half_pixel_centers") if k in resize.attr
    }
    return _Preprocessing(resize.op, attrs, tuple(int(s) for s in size), offset, scale)


def _op_and_constant(nodes: dict, node, either_side: bool = False):
    """(the node feeding input 0, the constant at input 1) of a binary op; (None, None) if
    the inputs are not a node and a Const (in either order when `either_side`)."""
    import tensorflow as tf

    inputs = [nodes.get(_source(name)) for name in node.input if not name.startswith("^")]
    if len(inputs) != 2 or None in inputs:
        return None, None
    orders = [inputs, inputs[::-1]] if either_side else [inputs]
    for first, second in orders:
        if second.op == "Const" and first.op != "Const":
            return first, tf.make_ndarray(second.attr["value"].tensor)
    return None, None


def _source(input_name: str) -> str:
    return input_name.split(":")[0]


def _is_float(node) -> bool:
    import tensorflow as tf

    # `in` first: indexing a protobuf map inserts the missing key.
    return "T" in node.attr and node.attr["T"].type == tf.float32.as_datatype_enum


def _resizer(preprocessing: _Preprocessing):
    """A TF function (b, H, W, 3) uint8 -> (b, 299, 299, 3) float32 that repeats the graph's
    ops: Cast to float32, the resize op with the graph's attrs, then (x - offset) * scale."""
    import tensorflow as tf

    resize = getattr(tf.raw_ops, preprocessing.resize_op)
    size = tf.constant(preprocessing.size, tf.int32)

    def prepare(x):
        resized = resize(images=tf.cast(x, tf.float32), size=size, **preprocessing.resize_attrs)
        return (resized - preprocessing.offset) * preprocessing.scale

    return tf.function(prepare, input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
