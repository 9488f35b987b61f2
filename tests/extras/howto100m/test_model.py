import pytest

torch = pytest.importorskip("torch")

from extras.howto100m import MaxMarginRankingLoss, Net  # noqa: E402
from extras.howto100m.checkpoint import load_net  # noqa: E402


def reference_keys(embd_dim: int, video_dim: int = 4096, we_dim: int = 300) -> dict:
    """The reference Net's state_dict layout (fact sheet 5.1), written out by hand."""
    e = embd_dim
    keys = {"text_pooling.fc.weight": (e, we_dim), "text_pooling.fc.bias": (e,)}
    for unit, in_dim in (("GU_text", e), ("GU_video", video_dim)):
        keys[f"{unit}.fc.weight"] = (e, in_dim)
        keys[f"{unit}.fc.bias"] = (e,)
        keys[f"{unit}.cg.fc.weight"] = (e, e)
        keys[f"{unit}.cg.fc.bias"] = (e,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{unit}.cg.batch_norm.{name}"] = (e,)
        keys[f"{unit}.cg.batch_norm.num_batches_tracked"] = ()
    return keys


def random_state_dict(keys: dict, device="cpu") -> dict:
    out = {}
    for name, shape in keys.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(0, dtype=torch.long, device=device)
        elif device == "meta":
            out[name] = torch.empty(shape, device=device)
        else:
            out[name] = torch.randn(shape) * 0.05
    return out


def test_forward_is_cosine_of_gated_embeddings():
    torch.manual_seed(0)
    net = Net(embd_dim=16, video_dim=12, we_dim=5).eval()
    video = torch.rand(4, 12)
    text = torch.randn(3, 7, 5)
    sim = net(video, text)
    assert sim.shape == (3, 4)

    def gated(unit, x):  # eq. 5.2-5.3 then the normalisation of eq. 5.1
        h = x @ unit.fc.weight.t() + unit.fc.bias
        y = h * torch.sigmoid(h @ unit.cg.fc.weight.t() + unit.cg.fc.bias)
        return y / y.norm(dim=1, keepdim=True)

    pool = net.text_pooling.fc
    words = torch.relu(text @ pool.weight.t() + pool.bias).amax(dim=1)
    expected = gated(net.GU_text, words) @ gated(net.GU_video, video).t()
    assert torch.allclose(sim, expected, atol=1e-6)
    assert sim.abs().max() <= 1 + 1e-6


def test_parameter_count_matches_the_thesis_model():
    with torch.device("meta"):
        net = Net(embd_dim=4096, video_dim=4096, we_dim=300)
    assert sum(p.numel() for p in net.parameters()) == 68_374_528


@pytest.mark.parametrize("embd_dim", [4096, 6144])
def test_reference_state_dict_loads_strictly(embd_dim):
    keys = reference_keys(embd_dim)
    with torch.device("meta"):
        net = Net(embd_dim=embd_dim, video_dim=4096, we_dim=300)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == keys
    result = net.load_state_dict(random_state_dict(keys, "meta"), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    wrong = random_state_dict(reference_keys(embd_dim, video_dim=2048), "meta")
    with pytest.raises(RuntimeError):
        net.load_state_dict(wrong, strict=True, assign=True)


def test_reference_checkpoint_file_loads_with_sizes_from_shapes(tmp_path):
    keys = reference_keys(32, video_dim=24, we_dim=10)
    state = random_state_dict(keys)
    path = tmp_path / "howto100m_pt_model.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # as saved under DDP
    net, payload = load_net(str(path))
    assert payload["config"]["embd_dim"] == 32
    assert (net.embd_dim, net.video_dim, net.we_dim) == (32, 24, 10)
    assert torch.equal(net.state_dict()["GU_video.fc.weight"], state["GU_video.fc.weight"])


def test_padding_takes_part_unless_masked():
    torch.manual_seed(0)
    net = Net(embd_dim=8, video_dim=4, we_dim=3)
    with torch.no_grad():
        net.text_pooling.fc.bias.fill_(5.0)  # relu(bias) of padded rows would dominate
    words = torch.randn(1, 2, 3)
    padded = torch.cat([words, torch.zeros(1, 3, 3)], dim=1)
    unmasked = net.text_pooling(padded)
    assert (unmasked >= 5.0).all()
    net.text_pooling.mask_padding = True
    assert torch.allclose(net.text_pooling(padded), net.text_pooling(words))
    empty = torch.zeros(2, 4, 3, requires_grad=True)
    pooled = net.text_pooling(empty)
    assert torch.equal(pooled, torch.zeros(2, 8))
    pooled.sum().backward()
    assert torch.isfinite(net.text_pooling.fc.weight.grad).all()


def test_unused_batch_norm_is_frozen_but_kept():
    net = Net(embd_dim=8, video_dim=4, we_dim=3)
    assert "GU_text.cg.batch_norm.weight" in net.state_dict()
    assert not net.GU_text.cg.batch_norm.weight.requires_grad
    sim = net(torch.rand(4, 4), torch.randn(4, 2, 3))
    MaxMarginRankingLoss()(sim, n_pair=2).backward()
    assert net.GU_video.cg.fc.weight.grad is not None
