"""S3D-G: released state_dict layout, shapes, space-to-depth, TF-style pooling."""

import ast
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from extras.milnce import S3D  # noqa: E402
from extras.milnce.s3d import MaxPool3dTFPadding, space_to_depth  # noqa: E402

KEYS_FILE = Path(__file__).with_name("s3d_state_dict_keys.txt")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _released_keys():
    """(key, shape, dtype) rows of the released checkpoint, parsed from the key list."""
    rows = []
    for line in KEYS_FILE.read_text().splitlines():
        if not line or line.startswith("#") or line.split()[0].isupper():
            continue
        key, rest = line.split(" ", 1)
        shape_text, dtype = rest.rsplit(" ", 1)
        rows.append((key, tuple(ast.literal_eval(shape_text)), dtype))
    return rows


def test_released_state_dict_loads_strictly():
    rows = _released_keys()
    assert len(rows) == 537
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, dtype in rows:
        if dtype == "int64":
            state[key] = torch.randint(0, 100, shape, dtype=torch.int64, generator=generator)
        else:
            state[key] = torch.rand(shape, generator=generator)
    model = S3D(space_to_depth=True)
    model.load_state_dict(state, strict=True)
    loaded = model.state_dict()
    for key in ("conv1.conv1.weight", "mixed_5c.gating_b3.fc.bias", "text_module.fc2.weight"):
        assert torch.equal(loaded[key], state[key])
    # Exactly the listed tensors, with the listed shapes, in both directions.
    assert {k: tuple(v.shape) for k, v in loaded.items()} == {k: s for k, s, _ in rows}


def test_parameter_counts_match_the_release():
    model = S3D(space_to_depth=True)
    video = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("text_"))
    assert video == 9_670_800
    assert sum(p.numel() for p in model.parameters()) == 31_211_336


def test_training_variant_differs_only_in_first_conv():
    released = S3D(space_to_depth=True, num_embeddings=10).state_dict()
    training = S3D(space_to_depth=False, num_embeddings=10).state_dict()
    assert released.keys() == training.keys()
    differing = [k for k in released if released[k].shape != training[k].shape]
    assert differing == ["conv1.conv1.weight"]
    assert tuple(training["conv1.conv1.weight"].shape) == (64, 3, 3, 7, 7)


@pytest.mark.parametrize("s2d", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 8, 64, 64), (1, 3, 4, 64, 96)])
def test_outputs_and_full_convolution(s2d, shape):
    model = S3D(space_to_depth=s2d, num_embeddings=10).eval()
    with torch.no_grad():
        out = model(torch.rand(*shape))
    assert out["video_embedding"].shape == (shape[0], 512)
    assert out["mixed_5c"].shape == (shape[0], 1024)
    assert torch.isfinite(out["video_embedding"]).all()
    # The embedding is the linear map of the pooled mixed_5c feature.
    expected = out["mixed_5c"] @ model.fc.weight.t() + model.fc.bias
    torch.testing.assert_close(out["video_embedding"], expected)


def test_intermediate_shapes_follow_the_reference_table():
    # Reference table at 32x224x224 scaled down by 4 in space: T, H, W after each stage.
    model = S3D(space_to_depth=True, num_embeddings=10).eval()
    seen = {}
    for name in (
        "conv1",
        "maxpool_2a",
        "conv_2c",
        "mixed_3c",
        "maxpool_4a",
        "mixed_4f",
        "mixed_5c",
    ):
        getattr(model, name).register_forward_hook(
            lambda module, args, out, name=name: seen.__setitem__(name, tuple(out.shape[1:]))
        )
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 64, 64))
    assert seen["conv1"] == (64, 17, 33, 33)  # before the 1-pixel crop
    assert seen["maxpool_2a"] == (64, 16, 16, 16)
    assert seen["conv_2c"] == (192, 16, 16, 16)
    assert seen["mixed_3c"] == (480, 16, 8, 8)
    assert seen["maxpool_4a"] == (480, 8, 4, 4)
    assert seen["mixed_4f"] == (832, 8, 4, 4)
    assert seen["mixed_5c"] == (1024, 4, 2, 2)


def test_space_to_depth_channel_layout():
    video = torch.rand(2, 3, 4, 6, 8)
    out = space_to_depth(video)
    assert out.shape == (2, 24, 2, 3, 4)
    for dt in range(2):
        for dh in range(2):
            for dw in range(2):
                for c in range(3):
                    channel = ((dt * 2 + dh) * 2 + dw) * 3 + c
                    torch.testing.assert_close(out[:, channel], video[:, c, dt::2, dh::2, dw::2])


def test_tf_padding_max_pool_matches_same_padding():
    pool = MaxPool3dTFPadding((1, 3, 3), (1, 2, 2))
    x = torch.rand(1, 2, 3, 7, 8)
    out = pool(x)
    assert out.shape == (1, 2, 3, 4, 4)  # ceil(n / stride), as TF 'SAME'
    # Window j covers input rows 2j .. 2j+2 (padding only after the end).
    expected = torch.stack(
        [x[:, :, :, 2 * j : 2 * j + 3, :].amax(dim=3) for j in range(4)], dim=3
    )  # (1, 2, 3, 4, 8)
    expected = torch.stack(
        [expected[..., 2 * j : 2 * j + 3].amax(dim=-1) for j in range(4)], dim=-1
    )
    torch.testing.assert_close(out, expected)


def test_kaiming_init_and_bad_init():
    model = S3D(space_to_depth=False, num_embeddings=10, weight_init="kaiming_normal")
    weight = model.conv_2b.conv1.weight
    assert abs(weight.std().item() - (2 / 64) ** 0.5) < 0.03
    assert torch.all(model.conv_2b.bn1.weight == 1)
    with pytest.raises(ValueError):
        S3D(weight_init="xavier")
