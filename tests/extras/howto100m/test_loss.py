import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extras.howto100m.loss import (  # noqa: E402
    MaxMarginRankingLoss,
    intra_video_weight,
    negative_weights,
    reference_weights,
)


def direct_loss(sim: np.ndarray, v: int, k: int, p: float, margin: float, weighting: bool):
    """Eq. 5.4-5.5 with loops, in the thesis' notation s_ij = s(V_i, C_j).

    `sim[t, c]` is text t against video c, so s_ij = sim[j, i].
    """
    b = v * k
    total = 0.0
    for i, j in itertools.product(range(b), range(b)):
        if i == j:
            continue
        same_video = i // k == j // k
        if weighting and same_video:
            alpha = p * k * (v - 1) / ((1 - p) * (k - 1))
        else:
            alpha = 1.0
        s_ij, s_ji, s_ii = sim[j, i], sim[i, j], sim[i, i]
        total += alpha * (max(0.0, margin + s_ij - s_ii) + max(0.0, margin + s_ji - s_ii))
    return total


@pytest.mark.parametrize(
    "v,k,p",
    [(2, 3, 0.5), (4, 2, 0.3), (3, 4, 0.8), (5, 3, 0.0), (32, 4, 0.5)],
)
def test_sum_equals_eq_5_4_and_5_5(v, k, p):
    rng = np.random.default_rng(v * 100 + k)
    sim = rng.uniform(-1, 1, (v * k, v * k))
    loss = MaxMarginRankingLoss(
        margin=0.1, negative_weighting=True, hard_negative_rate=p, reduction="sum"
    )
    got = loss(torch.tensor(sim, dtype=torch.float64), n_pair=k).item()
    assert got == pytest.approx(direct_loss(sim, v, k, p, 0.1, True), rel=1e-10)


def test_plain_mode_and_mean_reduction():
    v, k = 3, 2
    rng = np.random.default_rng(1)
    sim = rng.uniform(-1, 1, (v * k, v * k))
    plain = MaxMarginRankingLoss(margin=0.2, negative_weighting=False, reduction="sum")
    got = plain(torch.tensor(sim), n_pair=k).item()
    assert got == pytest.approx(direct_loss(sim, v, k, 0.5, 0.2, False))
    mean = MaxMarginRankingLoss(margin=0.2, hard_negative_rate=0.5)(torch.tensor(sim), n_pair=k)
    alpha = 0.5 * k * (v - 1) / (0.5 * (k - 1))
    total_weight = v * k * ((k - 1) * alpha + k * (v - 1))
    assert mean.item() == pytest.approx(direct_loss(sim, v, k, 0.5, 0.2, True) / total_weight)


@pytest.mark.parametrize("v,k,p", [(32, 64, 0.5), (4, 3, 0.25), (2, 2, 0.9)])
def test_weights_fix_the_intra_share_to_p(v, k, p):
    alpha = intra_video_weight(v, k, p)
    assert alpha == pytest.approx(p * k * (v - 1) / ((1 - p) * (k - 1)))
    w = negative_weights(v, k, p, dtype=torch.float64).numpy()
    video = np.arange(v * k) // k
    same = video[:, None] == video[None, :]
    assert np.all(np.diag(w) == 0)
    assert np.allclose(w[same & ~np.eye(v * k, dtype=bool)], alpha)
    assert np.allclose(w[~same], 1.0)
    intra_mass = w[same].sum(axis=None) / (v * k)
    inter_mass = w[~same].sum(axis=None) / (v * k)
    # Each anchor's negative weight splits p : 1 - p between its own video and the others.
    assert intra_mass / (intra_mass + inter_mass) == pytest.approx(p)


def test_thesis_batch_weight_value():
    # v=32, k=64, p=0.5: alpha = 64 * 31 / 63
    assert intra_video_weight(32, 64, 0.5) == pytest.approx(31.4920634920)


def test_degenerate_batches_use_unit_weights():
    assert intra_video_weight(1, 8, 0.5) == 1.0
    assert intra_video_weight(8, 1, 0.5) == 1.0
    sim = torch.rand(4, 4)
    weighted = MaxMarginRankingLoss(reduction="sum")(sim, n_pair=1)
    plain = MaxMarginRankingLoss(negative_weighting=False, reduction="sum")(sim, n_pair=1)
    assert torch.allclose(weighted, plain)


def test_perfect_ranking_gives_zero_and_gradients_flow():
    emb = torch.eye(6)
    assert MaxMarginRankingLoss()(emb @ emb.t(), n_pair=3).item() == 0.0
    sim = torch.rand(6, 6, requires_grad=True)
    MaxMarginRankingLoss()(sim, n_pair=2).backward()
    assert sim.grad is not None and sim.grad.abs().sum() > 0


def test_batch_size_comes_from_the_input():
    loss = MaxMarginRankingLoss()
    for b, k in [(6, 3), (12, 3), (12, 4)]:
        assert torch.isfinite(loss(torch.rand(b, b), n_pair=k))
    with pytest.raises(ValueError, match="multiple"):
        loss(torch.rand(6, 6), n_pair=4)
    with pytest.raises(ValueError, match="square"):
        loss(torch.rand(6, 5), n_pair=3)
    with pytest.raises(ValueError):
        MaxMarginRankingLoss(hard_negative_rate=1.0)


def reference_loss(sim: np.ndarray, v: int, k: int, h: float, margin: float, weighting: bool):
    """The reference MaxMarginRankingLoss (antoine77340/howto100m loss.py), from its
    definition: mask = kron((1 - a) I_v + a 1 1^T, ones(k, k)) * v (1 - e), e = 1 - h,
    a = e / ((v - 1)(1 - e)); loss = mean over all (i, j), diagonal included, of
    mask_ij * (relu(m + x_ij - x_ii) + relu(m + x_ij - x_jj)); mask = 1 unless weighted
    with k > 1."""
    b = v * k
    if weighting and k > 1:
        e = 1.0 - h
        a = e / ((v - 1) * (1.0 - e))
        mask = np.kron((1 - a) * np.eye(v) + a, np.ones((k, k))) * v * (1.0 - e)
    else:
        mask = np.ones((b, b))
    total = 0.0
    for i, j in itertools.product(range(b), range(b)):
        hinge = max(0.0, margin + sim[i, j] - sim[i, i]) + max(0.0, margin + sim[i, j] - sim[j, j])
        total += mask[i, j] * hinge
    return total / (b * b)


@pytest.mark.parametrize(
    "v,k,h,weighting",
    [(2, 3, 0.5, True), (4, 2, 0.3, True), (3, 4, 0.8, True), (5, 1, 0.5, True),
     (3, 3, 0.5, False), (32, 4, 0.5, True)],
)  # fmt: skip
def test_reference_weighting_equals_the_reference_formula(v, k, h, weighting):
    rng = np.random.default_rng(v * 10 + k)
    sim = rng.uniform(-1, 1, (v * k, v * k))
    loss = MaxMarginRankingLoss(
        margin=0.1, negative_weighting=weighting, hard_negative_rate=h, weighting="reference"
    )
    got = loss(torch.tensor(sim, dtype=torch.float64), n_pair=k).item()
    assert got == pytest.approx(reference_loss(sim, v, k, h, 0.1, weighting), rel=1e-10)


def test_reference_mask_values_and_its_relation_to_the_thesis_loss():
    # B=32, n_pair=64, h=0.5: 16.0 within a video (positive included), 0.516 across videos.
    w = reference_weights(32, 64, 0.5, dtype=torch.float64)
    assert w[0, 0].item() == w[0, 63].item() == pytest.approx(16.0)
    assert w[0, 64].item() == pytest.approx(32 / 62)
    assert torch.allclose(w.sum(dim=1), torch.full((2048,), 2048.0, dtype=torch.float64))
    # At h = 0 the closed form is the reference's limit (its own a divides by zero).
    assert reference_weights(3, 2, 0.0)[0, 1].item() == 0.0
    # The reference is (1 - h/k) x its weighted mean over negatives + (h/k) x 2 margin.
    v, k, h, m = 3, 4, 0.5, 0.1
    sim = torch.tensor(np.random.default_rng(0).uniform(-1, 1, (v * k, v * k)))
    ref = MaxMarginRankingLoss(m, hard_negative_rate=h, weighting="reference")(sim, n_pair=k)
    w = reference_weights(v, k, h, dtype=torch.float64).fill_diagonal_(0.0)
    d = sim.diagonal()
    hinge = torch.relu(m + sim - d[:, None]) + torch.relu(m + sim - d[None, :])
    weighted_mean = (w * hinge).sum() / w.sum()
    assert ref.item() == pytest.approx(((1 - h / k) * weighted_mean + (h / k) * 2 * m).item())
    # ... while the thesis weighs same-video negatives k / (k - 1) times more (vs other videos).
    thesis = negative_weights(v, k, h, dtype=torch.float64)
    ratio_thesis = thesis[0, 1] / thesis[0, k]
    ratio_reference = w[0, 1] / w[0, k]
    assert (ratio_thesis / ratio_reference).item() == pytest.approx(k / (k - 1))


def test_reference_weighting_arguments_are_checked():
    with pytest.raises(ValueError, match="weighting"):
        MaxMarginRankingLoss(weighting="paper")
    with pytest.raises(ValueError, match="mean"):
        MaxMarginRankingLoss(weighting="reference", reduction="sum")
    with pytest.raises(ValueError, match="2 videos"):
        MaxMarginRankingLoss(weighting="reference")(torch.rand(4, 4), n_pair=4)
    # One video but unweighted, or one pair per video: the plain reference mean.
    plain = MaxMarginRankingLoss(negative_weighting=False, weighting="reference")
    assert torch.isfinite(plain(torch.rand(4, 4), n_pair=4))


def test_training_flag_picks_the_weighting():
    from extras.howto100m.config import TrainConfig
    from extras.howto100m.model import Net
    from extras.howto100m.train import build_parts
    from y8m.errors import UsageError

    required = dict(captions="c", features_2d="f", word2vec="w", output_dir="o")
    config = TrainConfig(**required, loss_weighting="reference")
    config.check()
    parts = build_parts(Net(embd_dim=8, video_dim=6, we_dim=4), config, torch.device("cpu"))
    assert parts.loss_fn.weighting == "reference"
    assert TrainConfig(**required).loss_weighting == "thesis"
    with pytest.raises(UsageError, match="loss_weighting"):
        TrainConfig(**required, loss_weighting="paper").check()
