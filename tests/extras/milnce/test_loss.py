"""MIL-NCE loss: both forms against direct implementations of their formulas."""

import math

import pytest

torch = pytest.importorskip("torch")

from extras.milnce import MILNCELoss  # noqa: E402


def _direct(video, text, variant):
    """Eq. 6.1 written out with explicit sums of exponentials (float64).

    For clip i: P = {<v_i, t_ik>}, N = {<v_i, t_jk>, j != i} u {<v_j, t_ik>, j != i}.
    paper:    -log(sum_P / (sum_P + sum_N));   released: -log(sum_P / (2 sum_P + sum_N)).
    """
    video, text = video.double(), text.double()
    b = video.shape[0]
    k = text.shape[0] // b
    total = 0.0
    for i in range(b):
        positives = sum(math.exp(video[i] @ text[i * k + m]) for m in range(k))
        negatives = 0.0
        for j in range(b):
            if j == i:
                continue
            for m in range(k):
                negatives += math.exp(video[i] @ text[j * k + m])  # other narrations, video i
                negatives += math.exp(video[j] @ text[i * k + m])  # other videos, narrations of i
        copies = 2 if variant == "released" else 1
        total += -math.log(positives / (copies * positives + negatives))
    return total / b


@pytest.mark.parametrize("variant", ["released", "paper"])
@pytest.mark.parametrize("b,k,d", [(1, 1, 4), (4, 3, 8), (5, 1, 6), (3, 5, 2)])
def test_loss_equals_its_formula(variant, b, k, d):
    generator = torch.Generator().manual_seed(b * 100 + k * 10 + d)
    video = torch.randn(b, d, generator=generator)
    text = torch.randn(b * k, d, generator=generator)
    loss = MILNCELoss(variant)(video, text)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(_direct(video, text, variant), rel=1e-5, abs=1e-6)


def test_released_floor_is_log_two_and_paper_floor_is_zero():
    # Perfectly separated embeddings: orthogonal directions, large scale.
    b, k = 4, 3
    video = torch.eye(b, 8, dtype=torch.float64) * 7
    text = torch.repeat_interleave(torch.eye(b, 8, dtype=torch.float64), k, dim=0) * 7
    # Negatives weigh e^0 against e^49 for positives: the floors up to ~1e-20.
    assert MILNCELoss("released")(video, text).item() == pytest.approx(math.log(2), abs=1e-12)
    assert MILNCELoss("paper")(video, text).item() == pytest.approx(0.0, abs=1e-12)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        v = torch.randn(b, 8, generator=generator) * 5
        t = torch.randn(b * k, 8, generator=generator) * 5
        assert MILNCELoss("released")(v, t).item() >= math.log(2) - 1e-6
        assert MILNCELoss("paper")(v, t).item() >= -1e-6


def test_released_is_paper_with_doubled_positives():
    # log(2P + N) - log P versus log(P + N) - log P: the released loss is always larger.
    generator = torch.Generator().manual_seed(1)
    v, t = torch.randn(6, 5, generator=generator), torch.randn(12, 5, generator=generator)
    assert MILNCELoss("released")(v, t) > MILNCELoss("paper")(v, t)


def test_numerically_stable_at_large_scale():
    generator = torch.Generator().manual_seed(2)
    video = (torch.randn(4, 16, generator=generator) * 1e3).requires_grad_()
    text = (torch.randn(8, 16, generator=generator) * 1e3).requires_grad_()
    for variant in ("released", "paper"):
        loss = MILNCELoss(variant)(video, text)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(video.grad).all() and torch.isfinite(text.grad).all()


def test_gradient_matches_autograd_of_direct_form():
    generator = torch.Generator().manual_seed(3)
    video = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    text = torch.randn(6, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    for variant in ("released", "paper"):
        assert torch.autograd.gradcheck(MILNCELoss(variant), (video, text))


def test_bad_inputs():
    with pytest.raises(ValueError):
        MILNCELoss("symmetric")
    with pytest.raises(ValueError):
        MILNCELoss()(torch.randn(3, 4), torch.randn(7, 4))
