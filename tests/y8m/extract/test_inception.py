"""The frame networks: the batched frozen-graph path against feeding each image at DecodeJpeg:0
on a small fake graph with the official tensor names (winners_facts.md 6.1), and Keras'
InceptionV3 on random seeded weights built once per session."""

import numpy as np
import pytest

from y8m.errors import UsageError
from y8m.extract import inception, standins


def _fake_graph(path, **options):
    return standins.write_inception_graph(str(path), **options)


def _frames(seed=0):
    """Five frames of two sizes, interleaved so batches hold several size groups."""
    rng = np.random.default_rng(seed)
    sizes = [(48, 64), (48, 64), (90, 120), (48, 64), (90, 120)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.mark.parametrize(
    "attrs",
    [{}, {"align_corners": True}, {"half_pixel_centers": True}],
    ids=["tf1-default", "align-corners", "half-pixel"],
)
def test_graph_batched_path_equals_feeding_each_image(tmp_path, attrs):
    path = _fake_graph(tmp_path / "classify_image_graph_def.pb", **attrs)
    batched = inception.GraphNetwork(path, batch_size=3)
    single = inception.GraphNetwork(path, batched=False)
    assert batched.batched and not single.batched
    assert batched.preprocessing.resize_op == "ResizeBilinear"
    assert batched.preprocessing.size == (299, 299)
    # The graph records batch-1 shapes (as_graph_def(add_shapes=True)); they must not stick.
    assert batched._network.outputs[0].shape.as_list() == [None, 1, 1, 2048]
    frames = _frames()
    out, reference = batched(frames), single(frames)
    assert out.shape == (5, 2048) and out.dtype == np.float32 and reference.std() > 0
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched(np.stack(frames[:2])), reference[:2], rtol=1e-5, atol=1e-5)
    assert batched([]).shape == (0, 2048)


def test_graph_with_an_unknown_chain_feeds_one_image_at_a_time(tmp_path):
    path = _fake_graph(tmp_path / "odd.pb", extra_op=True)
    network = inception.GraphNetwork(path)
    assert not network.batched and network.preprocessing is None
    assert network(_frames()[:2]).shape == (2, 2048)
    with pytest.raises(UsageError, match="cannot be batched"):
        inception.GraphNetwork(path, batched=True)


def test_graph_files_that_are_not_the_inception_graph(tmp_path):
    with pytest.raises(UsageError, match="classify_image_graph_def.pb.*inception-2015-12-05"):
        inception.GraphNetwork(str(tmp_path / "missing.pb"))
    (tmp_path / "garbage.pb").write_bytes(b"\xff\xfe not a protobuf")
    with pytest.raises(UsageError, match="cannot read .*garbage.pb"):
        inception.GraphNetwork(str(tmp_path / "garbage.pb"))
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.placeholder(tf.uint8, (None, None, 3), name="DecodeJpeg")
    (tmp_path / "other.pb").write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(UsageError, match="has no tensor Mul:0"):
        inception.GraphNetwork(str(tmp_path / "other.pb"))


def test_frames_must_be_uint8_rgb(tmp_path):
    network = inception.GraphNetwork(_fake_graph(tmp_path / "g.pb"))
    for bad in ([np.zeros((8, 8, 3), np.float32)], [np.zeros((8, 8), np.uint8)]):
        with pytest.raises(ValueError, match="uint8"):
            network(bad)


def test_load_frame_network_wants_exactly_one_file(tmp_path):
    with pytest.raises(UsageError, match="not both"):
        inception.load_frame_network("a.pb", "b.h5")
    with pytest.raises(UsageError) as caught:
        inception.load_frame_network()
    message = str(caught.value)
    assert "classify_image_graph_def.pb" in message and "inception-2015-12-05.tgz" in message
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    network = inception.load_frame_network(inception_graph=_fake_graph(tmp_path / "g.pb"))
    assert isinstance(network, inception.GraphNetwork) and network.name == "inception_graph"


@pytest.fixture(scope="session")
def keras_weights(tmp_path_factory):
    """Random seeded InceptionV3 (no top) weights in a .weights.h5, and the model itself."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.InceptionV3(
        weights=None, include_top=False, pooling="avg", input_shape=(299, 299, 3)
    )
    path = tmp_path_factory.mktemp("inception") / "random_inception_v3.weights.h5"
    model.save_weights(str(path))
    return str(path), model


@pytest.fixture(scope="session")
def keras_network(keras_weights):
    return inception.KerasNetwork(keras_weights[0], batch_size=2)


def test_keras_network_uses_the_weights_and_the_graph_resize(keras_network, keras_weights):
    import tensorflow as tf

    frames = _frames()[:3]
    out = keras_network(frames)
    assert out.shape == (3, 2048) and out.dtype == np.float32 and out.std() > 0
    # Reference: TF1 bilinear resize without half-pixel centres, Keras' x / 127.5 - 1.
    for frame, row in zip(frames, out):
        x = tf.compat.v1.image.resize_bilinear(
            tf.cast(frame[None], tf.float32), (299, 299), align_corners=False
        )
        expected = keras_weights[1](x / 127.5 - 1.0, training=False).numpy()[0]
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-5)


def test_keras_network_is_independent_of_batch_position(keras_network):
    a, b = _frames()[:2]
    first, second = keras_network([a, b, a]), keras_network([b, a])
    np.testing.assert_allclose(first[0], first[2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first[0], second[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first[1], second[0], rtol=1e-4, atol=1e-5)


def test_keras_weights_of_another_architecture_are_usage_errors(tmp_path):
    import keras

    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    small.save_weights(str(tmp_path / "small.weights.h5"))
    with pytest.raises(UsageError) as caught:
        inception.KerasNetwork(str(tmp_path / "small.weights.h5"))
    assert "small.weights.h5" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="inception_v3_weights_tf_dim_ordering_tf_kernels_notop"):
        inception.KerasNetwork(str(tmp_path / "missing.h5"))
    (tmp_path / "weights.keras").write_bytes(b"zip")
    with pytest.raises(UsageError, match="not a .h5"):
        inception.KerasNetwork(str(tmp_path / "weights.keras"))
